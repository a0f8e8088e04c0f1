"""The Snapdragon SoCs LiteRT's Qualcomm compiler plugin compiles for, with their marketing names and the
architecture of their Hexagon NPU (HTP), each with its source. Standard library only."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..errors import UsageError

# where the facts come from
_EXECUTORCH = "ExecuTorch Qualcomm backend, backends/qualcomm/serialization/qc_schema.py (SoC to HTP arch)"
_LITERT = "LiteRT 2.3 ai_edge_litert/aot/vendors/qualcomm/target.py (the SoCs the plugin compiles for)"
_QUALCOMM = "Qualcomm's product pages (qualcomm.com/snapdragon), marketing name"
_COMPILER = "the QNN 2.51 HTP compiler itself: the context it compiles for the SoC states soc_type and arch"
_QNN_IDS = "QNN SDK QnnTypes.h QNN_SOC_MODEL_* (as ExecuTorch's QcomChipset and ONNX Runtime's soc_model use them)"


@dataclass(frozen=True)
class Soc:
    """One SoC: its model number as the plugin spells it, its marketing name, its HTP architecture (vNN)."""

    model: str
    name: str
    htp_arch: str
    qnn_id: int  # QNN's number for the SoC (QnnTypes.h's QNN_SOC_MODEL_*): ONNX Runtime's QNN option soc_model
    kind: str  # phone or automotive
    sources: tuple[str, ...]

    def to_dict(self) -> dict:
        return asdict(self) | {"sources": list(self.sources)}


SOCS: dict[str, Soc] = {
    soc.model: soc
    for soc in (
        Soc("SM8350", "Snapdragon 888", "v68", 30, "phone", (_LITERT, _EXECUTORCH, _QUALCOMM)),
        Soc("SM8450", "Snapdragon 8 Gen 1", "v69", 36, "phone", (_LITERT, _EXECUTORCH, _QUALCOMM)),
        Soc("SM8475", "Snapdragon 8+ Gen 1", "v69", 42, "phone", (_LITERT, _EXECUTORCH, _QUALCOMM)),
        Soc("SM8550", "Snapdragon 8 Gen 2", "v73", 43, "phone", (_LITERT, _EXECUTORCH, _QUALCOMM, _COMPILER)),
        Soc("SM8650", "Snapdragon 8 Gen 3", "v75", 57, "phone", (_LITERT, _EXECUTORCH, _QUALCOMM)),
        Soc("SM8750", "Snapdragon 8 Elite", "v79", 69, "phone", (_LITERT, _EXECUTORCH, _QUALCOMM)),
        Soc("SM8845", "Snapdragon 8 Gen 5", "v81", 97, "phone", (_LITERT, _QUALCOMM, _COMPILER)),
        Soc("SM8850", "Snapdragon 8 Elite Gen 5", "v81", 87, "phone", (_LITERT, _EXECUTORCH, _QUALCOMM)),
        Soc("SA8255", "Snapdragon SA8255P (automotive)", "v73", 52, "automotive", (_LITERT, _EXECUTORCH)),
        Soc("SA8295", "Snapdragon SA8295P (automotive)", "v68", 39, "automotive", (_LITERT, _EXECUTORCH)),
    )
}


def known() -> str:
    return ", ".join(f"{soc.model} ({soc.name})" for soc in SOCS.values())


def parse_socs(names: list[str] | None, every: bool) -> list[Soc]:
    """The SoCs a command names (case-insensitive, each once, in the order given), or all of them with ``every``;
    UsageError (exit 2) naming an unknown one and listing the known ones."""
    if every and names:
        raise UsageError("--all and --soc: give one or the other")
    if every:
        return list(SOCS.values())
    if not names:
        raise UsageError(f"name a SoC with --soc (or --all); known: {known()}")
    chosen: list[Soc] = []
    for name in names:
        soc = SOCS.get(name.strip().upper())
        if soc is None:
            raise UsageError(f"unknown SoC {name!r}; known: {known()}")
        if soc not in chosen:
            chosen.append(soc)
    return chosen
