"""The charts read at a glance: every epoch on the training curves, plain batch sizes and a legend clear of the
lines on the bench chart, plain latency ticks, and layer bars labelled by layer in graph order. Drawn from
made-up numbers of the shapes the bundle records (matplotlib only: no model, no TensorFlow)."""

from __future__ import annotations

import re

import pytest

from lenet_edge.plots import layer_labels, plot_bench, plot_layer_errors, plot_training_curves

PLAIN_NUMBER = re.compile(r"^\d+(\.\d+)?k?$")  # '20', '0.5', '100k': no 10², no 2⁵, no 1e+05


def _history(epochs: int) -> dict[str, list[float]]:
    """Curves shaped like a real run's: a first epoch far below the rest (85% train accuracy, then 95-99%)."""
    accuracy = [0.85, *(0.95 + 0.04 * i / max(epochs - 1, 1) for i in range(1, epochs))][:epochs]
    return {
        "loss": [0.5 / (i + 1) for i in range(epochs)],
        "accuracy": accuracy,
        "val_loss": [0.13 / (i + 1) for i in range(epochs)],
        "val_accuracy": [min(0.99, a + 0.01) for a in accuracy],
    }


@pytest.mark.parametrize("epochs", [1, 12, 40])
def test_training_curves_show_every_epoch_from_1(tmp_path, epochs):
    history = _history(epochs)
    fig = plot_training_curves(history, tmp_path / "curves.png", best_epoch=epochs, augmented=True)
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    for ax in fig.axes:
        low, high = ax.get_xlim()
        assert low < 1 and high > epochs, (low, high)  # epoch 1 and the last one, with their markers, inside
        ticks = list(ax.get_xticks())
        assert ticks[0] == 1 and all(float(t).is_integer() for t in ticks) and max(ticks) <= epochs
        if epochs <= 15:
            assert ticks == list(range(1, epochs + 1))
    low, high = fig.axes[1].get_ylim()
    every = history["accuracy"] + history["val_accuracy"]
    assert low < min(every) and max(every) < high  # the first epoch's 85% is drawn, not cut off


def _bench_rows(threads=(1, 2), batches=(1, 32, 256)) -> list[dict]:
    combos = [
        ("tflite-fp32", "litert", "xnnpack"),
        ("tflite-int8", "litert", "xnnpack"),
        ("tflite-int8", "litert", "none"),
        ("onnx-fp32", "onnxruntime", "cpu"),
        ("onnx-int8", "onnxruntime", "cpu"),
        ("keras", "keras", "tf.function"),
    ]
    return [
        {
            "format": fmt,
            "runtime": runtime,
            "delegate": delegate,
            "threads": count,
            "batch": batch,
            "p50_us": 20.0 * (i + 1) * batch / count,
            "throughput_ips": 5e4 / (i + 1) * count * batch**0.3,
        }
        for i, (fmt, runtime, delegate) in enumerate(combos)
        for count in threads
        for batch in batches
    ]


def _tick_texts(axis) -> list[str]:
    low, high = sorted(axis.get_view_interval())
    return [t.get_text() for t, v in zip(axis.get_ticklabels(), axis.get_ticklocs(), strict=True) if low <= v <= high]


def test_bench_throughput_panel_has_plain_batch_sizes_and_a_legend_beside_it(tmp_path):
    fig = plot_bench(_bench_rows(), "host", tmp_path / "bench_host.png")
    latency, throughput = fig.axes
    assert _tick_texts(throughput.xaxis) == ["1", "2", "4", "8", "16", "32", "64", "128", "256"]
    assert not throughput.xaxis.get_minorticklocs().size
    assert all(PLAIN_NUMBER.match(text) for text in _tick_texts(throughput.yaxis) if text)
    assert all(PLAIN_NUMBER.match(text) for text in _tick_texts(latency.xaxis) if text)
    legend = throughput.get_legend()
    assert legend.get_window_extent().x0 >= throughput.get_window_extent().x1  # beside the lines, not over them
    assert legend.get_window_extent().x1 <= fig.bbox.x1  # and inside the picture
    assert min(text.get_fontsize() for text in legend.get_texts()) >= 8
    assert len(legend.get_texts()) == 6
    # one colour per runtime, so a line's runtime reads without the legend
    colours = {line.get_label().split(" · ")[1]: line.get_color() for line in throughput.get_lines()}
    assert len(set(colours.values())) == len(colours) == 4


def test_bench_mobile_chart_has_plain_latency_ticks(tmp_path):
    fig = plot_bench(_bench_rows(threads=(1,), batches=(1,)), "mobile", tmp_path / "bench_mobile.png")
    (latency,) = fig.axes
    labelled = [text for text in _tick_texts(latency.xaxis) if text]
    assert len(labelled) >= 3 and all(PLAIN_NUMBER.match(text) for text in labelled)
    assert latency.get_legend() is None  # one thread count: said in the axis label, no legend over the bars
    assert "1 thread" in latency.get_xlabel()


def test_layer_chart_labels_rows_in_graph_order_and_cuts_an_exact_tensor(tmp_path):
    rows = [
        {"layer": "image", "op": "input", "snr_qdq_db": 410.0},
        {"layer": "C1", "op": "Conv", "snr_qdq_db": 38.0},
        {"layer": "C1", "op": "Tanh", "snr_qdq_db": 48.0},
        {"layer": "S2", "op": "Conv", "snr_qdq_db": 20.0},
        {"layer": "F6", "op": "Gemm", "snr_qdq_db": 42.0},
    ]
    for row in rows:
        row["suspect"] = row["snr_qdq_db"] < 25
    data = {"rows": rows, "metric": "snr_qdq_db", "threshold": 25.0, "tool": "onnxruntime qdq_loss_debug"}
    fig = plot_layer_errors("onnx-int8", data, tmp_path / "layers.png")
    (ax,) = fig.axes
    labels = ["image (input)", "C1 (Conv)", "C1 (Tanh)", "S2 (Conv)", "F6 (Gemm)"]
    assert [t.get_text() for t in ax.get_yticklabels()] == labels
    assert ax.get_ylim()[0] > ax.get_ylim()[1]  # inverted: the input at the top, the output at the bottom
    assert ax.get_xlim()[1] < 100  # the 38-48 dB bars are not squeezed by the input's 410 dB
    assert any("410 dB" in text.get_text() for text in ax.texts)
    assert [patch.get_facecolor()[0] > 0.8 for patch in ax.patches] == [row["suspect"] for row in rows]


def test_layer_labels_tell_apart_tensors_of_one_layer_and_op():
    rows = [{"layer": "F6", "op": "MatMul"}, {"layer": "F6", "op": "Add"}, {"layer": "C1"}, {"layer": "C1"}]
    assert layer_labels(rows) == ["F6 (MatMul)", "F6 (Add)", "C1 #1", "C1 #2"]
