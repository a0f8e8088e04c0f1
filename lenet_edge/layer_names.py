"""Which Keras layer a converted tensor or node comes from: the converters keep the layer names (C1, S2, F6…)
inside their own tensor names, and the reports, the per-op profiles and --keep-float read them back."""

from __future__ import annotations

import re

_OP_LABELS = {"SOFTMAX": "probabilities", "QUANTIZE": "uint8/int8 I/O"}
_LAYER = re.compile(r"^(?:NumericVerify/)?[^/;]+/([^/;]+?)(?:_\d+)?/")


def layer_of(tensor_name: str, op: str = "") -> str:
    """The Keras layer a converted tensor or node comes from ('lenet5_classic_1/C3_1/BiasAdd;…' -> 'C3').
    A name the converter gave no layer is labelled by its ``op`` where that says what it is (the TFLite
    output 'StatefulPartitionedCall_1:0' of SOFTMAX is 'probabilities'), else returned as it is ('Conv__89')."""
    match = _LAYER.match(tensor_name)
    return match[1] if match else _OP_LABELS.get(op, tensor_name)
