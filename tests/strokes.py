"""Pen strokes traced from real MNIST digits: what a hand would draw to write the same digit. The digit is
upsampled, thinned to a one-pixel skeleton (Zhang-Suen) and walked into polylines, in the coordinates of a
280×280 drawing pad (10 pad pixels per MNIST pixel). The browser test draws them with the mouse; the Python
test renders them with Pillow's round pen."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

UPSAMPLE = 4  # skeleton grid: 112×112 for a 28×28 digit
PAD = 280  # the page's drawing pad
NEIGHBOURS = [(-1, 0), (0, 1), (1, 0), (0, -1), (-1, 1), (1, 1), (1, -1), (-1, -1)]  # 4-neighbours first


def skeleton(digit: np.ndarray) -> np.ndarray:
    """The digit's one-pixel-wide skeleton on the upsampled grid (bool)."""
    size = 28 * UPSAMPLE
    big = np.asarray(Image.fromarray(digit).resize((size, size), Image.Resampling.BILINEAR), np.float32)
    image = (big > 96).astype(np.uint8)
    changed = True
    while changed:  # Zhang-Suen thinning, both sub-steps vectorised
        changed = False
        for step in (0, 1):
            p = np.pad(image, 1)
            p2, p3, p4, p5 = p[:-2, 1:-1], p[:-2, 2:], p[1:-1, 2:], p[2:, 2:]
            p6, p7, p8, p9 = p[2:, 1:-1], p[2:, :-2], p[1:-1, :-2], p[:-2, :-2]
            ring = [p2, p3, p4, p5, p6, p7, p8, p9, p2]
            count = sum(ring[:8])
            transitions = sum((ring[i] == 0) & (ring[i + 1] == 1) for i in range(8))
            south_east = (p2 * p4 * p6 == 0) & (p4 * p6 * p8 == 0)
            north_west = (p2 * p4 * p8 == 0) & (p2 * p6 * p8 == 0)
            side = south_east if step == 0 else north_west
            remove = (image == 1) & (count >= 2) & (count <= 6) & (transitions == 1) & side
            if remove.any():
                image[remove] = 0
                changed = True
    return image.astype(bool)


def _walk(points: set, visited: set, start: tuple) -> list[tuple]:
    path, direction = [start], (0, 0)
    visited.add(start)
    while True:
        here = path[-1]
        options = [(here[0] + dy, here[1] + dx) for dy, dx in NEIGHBOURS]
        fresh = [p for p in options if p in points and p not in visited]
        if not fresh:  # join the stroke to a visited neighbour it ends beside (a junction, a closed loop)
            joins = [p for p in options if p in visited and p not in path[-3:]]
            if joins and len(path) > 2:
                path.append(joins[0])
            return path
        nxt = max(fresh, key=lambda p: (p[0] - here[0]) * direction[0] + (p[1] - here[1]) * direction[1])
        direction = (nxt[0] - here[0], nxt[1] - here[1])
        visited.add(nxt)
        path.append(nxt)


def strokes(digit: np.ndarray, pad: int = PAD) -> list[list[tuple[float, float]]]:
    """Polylines (x, y) on a pad×pad drawing pad that write ``digit`` (uint8 28×28)."""
    skel = skeleton(digit)
    points = set(zip(*np.nonzero(skel), strict=True))
    degree = {p: sum((p[0] + dy, p[1] + dx) in points for dy, dx in NEIGHBOURS) for p in points}
    visited: set = set()
    paths = []
    for start in sorted(points, key=lambda p: (degree[p] != 1, p)):  # ends of strokes first, then loops
        if start not in visited:
            path = _walk(points, visited, start)
            if len(path) >= 3:
                paths.append(path)
    scale = pad / (28 * UPSAMPLE)
    return [[((x + 0.5) * scale, (y + 0.5) * scale) for y, x in path[::2] + path[-1:]] for path in paths]


def render(lines: list[list[tuple[float, float]]], width: float, pad: int = PAD) -> bytes:
    """The strokes drawn with a round pen of ``width`` in dark ink on a transparent pad, as PNG bytes (what the
    page's canvas sends)."""
    image = Image.new("RGBA", (pad, pad), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    radius = width / 2
    for line in lines:
        draw.line(line, fill=(17, 17, 17, 255), width=round(width), joint="curve")
        for x, y in (line[0], line[-1]) if width > 2 else ():
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=(17, 17, 17, 255))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


# Digits written by hand as a person draws them on the pad (not traced from MNIST): control points of each
# stroke, rounded off by Chaikin's corner cutting. An open-top 4, a 7 without a bar, a 1 with a flag.
HAND = {
    0: [[(140 + 58 * np.sin(t), 140 - 92 * np.cos(t)) for t in np.linspace(0, 2 * np.pi, 40)]],
    1: [[(118, 70), (148, 40), (148, 240)]],
    2: [[(82, 95), (100, 50), (150, 38), (195, 70), (190, 120), (90, 235), (210, 232)]],
    3: [[(80, 65), (130, 38), (190, 60), (185, 115), (135, 135), (195, 160), (195, 220), (135, 245), (78, 222)]],
    4: [[(150, 40), (75, 170), (215, 170)], [(172, 95), (172, 245)]],
    5: [[(198, 42), (95, 42), (88, 128), (150, 112), (200, 150), (198, 212), (140, 244), (82, 222)]],
    6: [[(188, 48), (130, 55), (92, 140), (95, 215), (140, 244), (190, 212), (188, 160), (140, 140), (96, 172)]],
    7: [[(72, 45), (210, 45), (125, 245)]],
    8: [
        [
            (140, 140),
            (92, 100),
            (110, 48),
            (170, 48),
            (188, 100),
            (140, 140),
            (88, 190),
            (105, 238),
            (175, 238),
            (193, 190),
            (140, 140),
        ]
    ],
    9: [[(192, 92), (165, 45), (115, 45), (88, 90), (115, 135), (165, 130), (192, 92), (188, 245)]],
}


def hand_strokes(digit: int, rounds: int = 3) -> list[list[tuple[float, float]]]:
    """The hand-written strokes of ``digit`` on the 280×280 pad, smoothed."""
    lines = []
    for line in HAND[digit]:
        points = np.asarray(line, np.float64)
        for _ in range(rounds):  # Chaikin: each corner cut at 1/4 and 3/4, the ends kept
            cut = np.empty((2 * len(points) - 2, 2))
            cut[0::2] = 0.75 * points[:-1] + 0.25 * points[1:]
            cut[1::2] = 0.25 * points[:-1] + 0.75 * points[1:]
            points = np.vstack([points[:1], cut, points[-1:]])
        lines.append([(float(x), float(y)) for x, y in points])
    return lines
