"""Any picture of a digit to a 28×28 MNIST digit, the way MNIST itself was made (LeCun et al.): the ink's
bounding box scaled to fit 20×20 with its aspect ratio kept, then placed in 28×28 by its centre of mass.

Before that: colour and transparency to grey (transparent is background), dark ink on a light background
inverted (MNIST is white on black), and a stroke much thinner than MNIST's pen thickened so that it is about
as wide, once scaled, as the strokes the model learnt from. NumPy, and Pillow to decode and scale pictures: the
``pictures`` extra, which the runtime-only install leaves out (without it, reading a picture is a one-line
UsageError naming the extra)."""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .errors import UsageError
from .files import atomic_output, plain_file_problem

BOX, SIZE = 20, 28  # MNIST: the digit fits 20×20, centred by mass in 28×28
INK = 0.1  # a pixel is ink above this fraction of the brightest ink (MNIST digits come out as they went in)
THIN = 0.6  # a stroke is thin below this fraction of PEN
PEN = 2.5  # the stroke width, in pixels at the 20×20 scale, thin strokes are grown to (2.0-2.5 measured best)
MAX_FILE_BYTES = 64 << 20  # a photo or a drawing, not more
MAX_PIXELS = 50_000_000  # checked from the header, before decoding: a 50 MP phone photo at most
WORK_SIDE = 1024  # larger pictures are scaled down to this before any float copy: a digit needs no more
_OPENING = threading.Lock()  # serve opens pictures on several threads; Pillow's limit is one global
NO_PILLOW = "reading pictures needs Pillow, which this install leaves out: pip install 'lenet-edge[pictures]'"


def require_pillow() -> None:
    """A UsageError naming the extra to install where Pillow is missing (the runtime-only install)."""
    try:
        found = importlib.util.find_spec("PIL") is not None
    except ValueError:  # imported without a spec: it is here
        found = True
    if not found:
        raise UsageError(NO_PILLOW)


def load_image(path: str | Path | BinaryIO, name: str | None = None) -> np.ndarray:
    """A PNG, JPEG (any size, colour or not; a path or an open file) as float32 grey 0-255, white ink on
    black. ``name`` is what errors call it (default: the path)."""
    require_pillow()
    from PIL import Image, UnidentifiedImageError

    name = name or str(path)
    if isinstance(path, str | Path):
        _check_file(Path(path), name)
    try:
        with _OPENING:  # Pillow's own limit (a warning from 89 MP) is off while the header is read: ours follows
            limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                opened = Image.open(path)
            finally:
                Image.MAX_IMAGE_PIXELS = limit
        with opened as image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise UsageError(f"{name}: {width}×{height} pixels, more than {MAX_PIXELS:,} (not decoded)")
            image.draft(None, (WORK_SIDE, WORK_SIDE))  # JPEG: decode at a reduced scale already
            image.load()
            image.thumbnail((WORK_SIDE, WORK_SIDE))
            if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
                rgba = np.asarray(image.convert("RGBA"), np.float32)
                grey = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)
                alpha = rgba[..., 3] / 255.0
                return _white_on_black(grey, alpha)
            return _white_on_black(np.asarray(image.convert("L"), np.float32), None)
    except FileNotFoundError:
        raise UsageError(f"{name}: no such file") from None
    except Image.DecompressionBombError:
        raise UsageError(f"{name}: more than {MAX_PIXELS:,} pixels (not decoded)") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UsageError(f"{name}: not a readable image ({type(exc).__name__})") from None


def _check_file(path: Path, name: str) -> None:
    """A plain file of a picture's size, checked before it is opened."""
    problem = plain_file_problem(path, MAX_FILE_BYTES, "more than a picture of a digit needs")
    if problem:
        raise UsageError(f"{name}: {problem}")


def _white_on_black(grey: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """Ink bright, background 0. On a transparent canvas the strokes are where it is opaque; otherwise the
    border tells: a light border means dark ink on a light page, which is inverted."""
    if alpha is not None and alpha.min() < 0.99:
        return 255.0 * alpha
    return 255.0 - grey if _border(grey) > 127 else grey


def _border(grey: np.ndarray) -> float:
    if grey.ndim != 2 or min(grey.shape) < 3:
        return float(np.median(grey))
    edge = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    return float(np.median(edge))


def to_mnist(ink: np.ndarray) -> np.ndarray:
    """White-on-black grey (any size) to a uint8 28×28 MNIST-style digit. UsageError if there is no ink."""
    require_pillow()
    from PIL import Image

    ink = np.asarray(ink, np.float32)
    ink = ink - np.median(_border_band(ink))  # a grey background (a photo) becomes 0
    ink = np.clip(ink, 0, None)
    peak = float(ink.max()) if ink.size else 0.0
    if peak < 16:  # nothing brighter than faint noise
        raise UsageError("no digit in the image: it is empty or has no contrast")
    mask = ink > INK * peak
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    ink = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    mask = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    ink = _thicken(ink, mask)
    scale = BOX / max(ink.shape)
    height, width = max(1, round(ink.shape[0] * scale)), max(1, round(ink.shape[1] * scale))
    small = np.array(Image.fromarray(ink, mode="F").resize((width, height), Image.Resampling.BOX), np.float32)
    small *= 255.0 / max(float(small.max()), 1e-6)  # MNIST's strokes reach full white
    total = small.sum()
    cy = float((small.sum(1) * np.arange(height)).sum() / total)
    cx = float((small.sum(0) * np.arange(width)).sum() / total)
    top, left = round(SIZE / 2 - cy), round(SIZE / 2 - cx)  # MNIST: mass centre at pixel (14, 14)
    top, left = min(max(top, 0), SIZE - height), min(max(left, 0), SIZE - width)
    digit = np.zeros((SIZE, SIZE), np.float32)
    digit[top : top + height, left : left + width] = small
    return np.clip(np.round(digit), 0, 255).astype(np.uint8)


def _border_band(ink: np.ndarray) -> np.ndarray:
    return np.concatenate([ink[0], ink[-1], ink[:, 0], ink[:, -1]]) if min(ink.shape) >= 3 else ink.ravel()


def _thicken(ink: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Grow strokes that would come out thinner than MNIST's pen once scaled (a 2 px line on a 400 px
    canvas would be 0.1 px wide): grey-level dilation by whole pixels (a cross, then a square: an octagon),
    never thinning. The ink grows outwards too, so the box that is fitted to 20×20 holds the whole pen, as in
    MNIST; the growth g solves (width + 2g) / (extent + 2g) = PEN / BOX."""
    area = mask.sum()
    eroded = mask.copy()
    eroded[1:-1, 1:-1] &= mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    edge = max(int(area - eroded[1:-1, 1:-1].sum()), 1)
    width = 2.0 * area / edge  # stroke width ≈ area / half its outline
    extent = max(ink.shape)
    if width >= THIN * PEN * extent / BOX:  # MNIST's own strokes, and any as thick, stay as they are
        return ink
    grow = min(round((PEN * extent / BOX - width) / (2 * (1 - PEN / BOX))), 100)
    ink = np.pad(ink, grow)
    for step in range(grow):
        padded = np.pad(ink, 1)
        near = [padded[1:-1, 1:-1], padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]]
        if step % 2:
            near += [padded[:-2, :-2], padded[:-2, 2:], padded[2:, :-2], padded[2:, 2:]]
        ink = np.maximum.reduce(near)
    return ink


def mnist_digit(path: str | Path) -> np.ndarray:
    """A picture file to the uint8 28×28 digit the models take."""
    return to_mnist(load_image(path))


def save_digit(digit: np.ndarray, path: Path) -> None:
    """A 28×28 uint8 digit as a greyscale PNG."""
    require_pillow()
    from PIL import Image

    with atomic_output(path) as tmp:
        Image.fromarray(np.asarray(digit, np.uint8).reshape(SIZE, SIZE)).save(tmp, format="PNG")
