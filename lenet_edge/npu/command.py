"""``lenet-edge npu BUNDLE --soc SM8550``: compile the bundle's int8 .tflite for each SoC (with its first
convolution whole again, rewrite.py, when that answers bit for bit alike; LiteRT's NPU file and ONNX Runtime's QNN
context model), prove the NPU takes the whole graph, judge both forms' answers in the HTP simulator against Keras
and against LiteRT on the CPU on the file compiled, count simulated cycles per image and per op (beside those of
the file as it is), and record the files in the manifest (``npu``) and the findings for report.json (``npu``).

The QNN tools run in their own Python (env.py) as the agent (agent.py), in a workspace holding a copy of this
package, as the targets run theirs. NumPy, LiteRT (the CPU reference) and the standard library here."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..console import log
from ..data import Mnist
from ..errors import BundleError, LenetEdgeError, UsageError
from ..files import TEMP_MARK, sha256_file
from ..host import cpu_model, usable_cores
from ..manifest import NPU_FOLDER, REFERENCE, Artifact, read_manifest, write_manifest
from ..runtimes import open_runner
from ..targets.base import copy_package
from . import graph
from .env import glue_dir, npu_python
from .judging import against_same_layers, cycles, judge
from .rewrite import GRAPH_SHIPPED, GRAPH_UNSPLIT, write_unsplit
from .socs import Soc, parse_socs

SOURCE_FORMAT = "tflite-int8"  # the artifact compiled: the int8 model an app ships
ONNX_FORMAT = "onnx-int8"  # the int8 ONNX, which ONNX Runtime's QNN execution provider compiles itself
FOLDER = NPU_FOLDER
PROFILED = 50  # digits run again with QNN profiling "detailed": cycles are the median over them, the first left out
DIGITS_PER_WORKER = 500  # a simulator process costs about a second to start: fewer digits share one
SIMULATOR = (
    "Qualcomm's HTP simulator (the x86-64 libQnnHtp.so of the onnxruntime-qnn wheel) run through ONNX Runtime's QNN "
    "execution provider, CPU fallback disabled: the compiled context binary's own instructions, simulated. It "
    "shows the NPU runs the whole graph and what it answers; it does not show bit-exactness with a phone's HTP, "
    "and simulated cycles are not a phone's latency (clocks, DDR, power states and the CPU-to-NPU call are not "
    "in them)."
)


class NpuError(LenetEdgeError):
    """The NPU agent failed (not a SoC's compile, which is reported per SoC)."""


@dataclass(frozen=True)
class NpuOptions:
    bundle: Path
    socs: list[Soc]
    limit: int | None = None  # test digits judged (None: all)
    workers: int = 0  # simulator processes (0: one per usable core)
    profiled: int = PROFILED
    verify: bool = False  # re-judge the files the manifest lists; recompile none
    onnx: bool = True  # also judge the bundle's int8 ONNX on the QNN execution provider
    rewrite: bool = True  # compile the int8 file with its row-shift split undone (rewrite.py) when it answers alike


def file_names(soc: Soc) -> tuple[str, str]:
    """The two compiled forms of one SoC, relative to the bundle."""
    return f"{FOLDER}/lenet5_int8_{soc.model}.tflite", f"{FOLDER}/lenet5_int8_{soc.model}_ctx.onnx"


# --- the agent --------------------------------------------------------------------------------------------------


class Agent:
    """The NPU tools' Python with a copy of this package, in a temporary workspace."""

    def __init__(self, python: Path):
        self.python = python
        self.root = Path(tempfile.mkdtemp(prefix="lenet-edge-npu-"))
        copy_package(self.root / "code")

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def start(self, job: dict, name: str) -> subprocess.Popen:
        job_file = self.root / f"{name}.json"
        job_file.write_text(json.dumps(job))
        env = os.environ | {"PYTHONPATH": str(self.root / "code")}
        return subprocess.Popen(
            [str(self.python), "-m", "lenet_edge.npu.agent", str(job_file)],
            env=env,
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )

    @staticmethod
    def answer(process: subprocess.Popen) -> dict:
        out, err = process.communicate()
        lines = [line for line in out.strip().splitlines() if line.startswith("{")]  # QNN prints to stdout too
        try:
            answer = json.loads(lines[-1]) if lines else None
        except json.JSONDecodeError:
            answer = None
        if process.returncode != 0 or not isinstance(answer, dict):
            last = (err.strip().splitlines() or [""])[-1][:200]
            raise NpuError(f"the NPU agent failed (exit code {process.returncode}): {last}")
        if "error" in answer:
            raise NpuError(f"the NPU agent: {answer['error']}")
        return answer

    def run(self, job: dict, name: str = "job") -> dict:
        return self.answer(self.start(job, name))


# --- compile ------------------------------------------------------------------------------------------------------


def _proof(stats: list[dict], compiled: Path) -> dict:
    """Ops offloaded of total, partitions, and every op left to the CPU named (by the compiled file itself)."""
    left = graph.left_on_cpu(compiled)
    partitions = len(graph.dispatches(compiled))
    offloaded = sum(s["offloaded"] for s in stats)
    total = sum(s["total"] for s in stats)
    return {
        "ops_offloaded": offloaded,
        "ops_total": total,
        "partitions": partitions,
        "left_on_cpu": [f"{node.op} ({', '.join(node.outputs) or 'no output'})" for node in left],
        "whole": not left and partitions == 1 and offloaded == total > 0,
    }


@dataclass(frozen=True)
class Compiled:
    """A .tflite the NPU compiles: the bundle's int8 file as it is, or rewritten (rewrite.py), with its answers
    in LiteRT on the CPU (what the simulator's are held to)."""

    path: Path
    graph: str
    sha256: str
    cpu_raw: np.ndarray


def _compiled_sha(entry: dict) -> str | None:
    """The sha256 of the .tflite an entry was compiled from (a manifest before the rewrite: the source's own)."""
    source = entry.get("source", {})
    return source.get("compiled_sha256", source.get("sha256"))


def _recorded_check(bundle: Path, entries: list[dict], source_sha: str, soc: Soc) -> dict:
    """verify's view of one SoC's compiled files: both listed, present, with the manifest's checksums, compiled
    from the bundle's int8 model as it is (or from its rewrite)."""
    if len(entries) != 2:
        return {"status": "fail", "reason": f"not compiled for {soc.model} (lenet-edge npu BUNDLE --soc {soc.model})"}
    for entry in entries:
        path = bundle / entry["file"]
        if not path.is_file():
            return {"status": "fail", "reason": f"{entry['file']}: missing"}
        if sha256_file(path) != entry.get("sha256"):
            return {"status": "fail", "reason": f"{entry['file']}: its sha256 differs from the manifest's"}
        if entry.get("source", {}).get("sha256") != source_sha:
            return {"status": "fail", "reason": f"{entry['file']}: compiled from another {SOURCE_FORMAT} model"}
    return {"status": "pass", "proof": entries[0]["proof"], "context": entries[0].get("context", {}), "reused": True}


def _unchanged(bundle: Path, entries: list[dict], source_sha: str, compiled_sha: str, tools: dict) -> bool:
    """Both forms already compiled from this source (and this rewrite of it) with these tools, and untouched since."""
    return len(entries) == 2 and all(
        e.get("source", {}).get("sha256") == source_sha
        and _compiled_sha(e) == compiled_sha
        and e.get("tools") == tools
        and (bundle / e["file"]).is_file()
        and sha256_file(bundle / e["file"]) == e.get("sha256")
        for e in entries
    )


def compile_soc(
    agent: Agent, bundle: Path, source: Path, soc: Soc, glue: Path, names: tuple[str, str] | None = None
) -> dict:
    """Compile ``source`` for one SoC into a temp file beside the final ones (``names``, relative to ``bundle``:
    the SoC's own by default); keep them only when the NPU takes it whole."""
    tflite, ctx = (bundle / name for name in (names or file_names(soc)))
    tmp_tflite = tflite.with_name(f".{tflite.name}.{TEMP_MARK}{os.getpid()}.tmp")
    tmp_ctx = ctx.with_name(f".{ctx.name}.{TEMP_MARK}{os.getpid()}.tmp")
    try:
        start = time.perf_counter()
        job = {"task": "compile", "source": str(source.resolve()), "out": str(tmp_tflite),
               "ctx_out": str(tmp_ctx), "soc": soc.model, "glue": str(glue)}  # fmt: skip
        answer = agent.run(job, f"compile-{soc.model}")
        seconds = round(time.perf_counter() - start, 2)
        if not answer["ok"]:
            return {"status": "fail", "reason": f"the compiler plugin failed: {answer['error']}", "seconds": seconds}
        proof = _proof(answer["stats"], tmp_tflite)
        if not proof["whole"]:
            left = ", ".join(proof["left_on_cpu"]) or "none named"
            reason = (
                f"the NPU does not take the whole graph: {proof['ops_offloaded']} of {proof['ops_total']} ops in "
                f"{proof['partitions']} partitions; left on the CPU: {left}"
            )
            return {"status": "fail", "reason": reason, "proof": proof, "seconds": seconds}
        stated = answer.get("compiled_for", [])
        proof["compiled_for"] = stated
        if [entry["htp_arch"] for entry in stated] != [soc.htp_arch]:
            said = ", ".join(f"{e['soc']} {e['htp_arch']}" for e in stated) or "nothing"
            reason = f"the HTP compiler compiled for {said}, not for {soc.model}'s HTP {soc.htp_arch}"
            return {"status": "fail", "reason": reason, "proof": proof, "seconds": seconds}
        if not answer.get("ctx", {}).get("written"):
            return {"status": "fail", "reason": "no context model was written", "proof": proof, "seconds": seconds}
        os.replace(tmp_tflite, tflite)
        os.replace(tmp_ctx, ctx)
        context = {key: answer["ctx"][key] for key in ("partition", "context_bytes", "context_sha256")}
        return {"status": "pass", "proof": proof, "seconds": seconds, "context": context}
    finally:
        tmp_tflite.unlink(missing_ok=True)
        tmp_ctx.unlink(missing_ok=True)


# --- judge --------------------------------------------------------------------------------------------------------


def simulate(
    agent: Agent, model: Path, images: np.ndarray, workers: int, profiled: int, name: str, provider: dict | None = None
) -> dict:
    """Raw outputs of an ONNX model (a context model, or an int8 ONNX the QNN execution provider compiles with
    ``provider``'s options) on ``images`` in the simulator, split over ``workers`` processes; then, alone (the
    simulator's cycles move with the host's load: its HTP threads are host threads), the first ``profiled``
    digits with QNN profiling. Returns {"raw": [n, 10] array, "profile": runs}."""
    chunks = [c for c in np.array_split(np.arange(len(images)), max(1, min(workers, len(images)))) if len(c)]
    alone = len(chunks) == 1  # one process: it profiles after its digits, nothing runs beside it
    jobs = [(f"{name}-{k}", images[chunk], profiled if alone else 0) for k, chunk in enumerate(chunks)]
    answers = []
    for batch in (jobs, [(f"{name}-profile", images[:profiled], profiled)] if profiled and not alone else []):
        processes = []
        for job_name, digits, profile in batch:
            np.save(agent.root / f"{job_name}.npy", digits)
            job = {"task": "simulate", "model": str(model.resolve()), "images": str(agent.root / f"{job_name}.npy"),
                   "out": str(agent.root / f"{job_name}-out.npy"), "profile": profile,
                   "provider": provider or {}}  # fmt: skip
            processes.append(agent.start(job, job_name))
        answers += [Agent.answer(p) for p in processes]
    for answer in answers:
        if answer["providers"][0] != "QNNExecutionProvider":
            raise NpuError(f"{model.name}: ONNX Runtime did not give the model to the QNN execution provider")
    raw = np.concatenate([np.load(agent.root / f"{job_name}-out.npy") for job_name, _, _ in jobs])
    return {"raw": raw, "profile": answers[-1].get("profile", []) if profiled else []}


# --- the command --------------------------------------------------------------------------------------------------


def _intact(bundle: Path, artifact: Artifact | None) -> Artifact | None:
    """The artifact when its file is there with the manifest's checksum."""
    path = None if artifact is None else bundle / artifact.file
    return artifact if artifact and path and path.is_file() and sha256_file(path) == artifact.sha256 else None


def judge_onnx(agent: Agent, bundle: Path, source: Artifact, soc: Soc, images: np.ndarray, workers: int,
               profiled: int, labels: np.ndarray, reference: np.ndarray, cpu_raw: np.ndarray) -> dict:  # fmt: skip
    """The bundle's int8 ONNX as ONNX Runtime's QNN execution provider compiles it for ``soc`` (soc_model,
    htp_arch), CPU fallback disabled, its batch dimension fixed to 1: whole on the NPU or not, its answers, its
    cycles."""
    provider = {"soc_model": str(soc.qnn_id), "htp_arch": soc.htp_arch.lstrip("v")}
    try:
        simulated = simulate(agent, bundle / source.file, images, workers, profiled, f"{soc.model}-onnx", provider)
    except NpuError as exc:
        log(f"  {source.file} on the QNN execution provider: ❎ {exc}")
        return {"file": source.file, "status": "fail", "reason": str(exc), "provider": provider}
    judged = judge(simulated["raw"], cpu_raw, source.output, reference, labels)
    counted = cycles(simulated["profile"], [])
    log(f"  {source.file} on the QNN execution provider for {soc.model} (batch 1, no CPU fallback): whole; "
        f"{judged['accuracy']:.2%}, {judged['agreement_keras']:.2%} agree with Keras, {judged['agreement_cpu']:.2%} "
        f"with ONNX Runtime CPU; {counted.get('median_per_image', 0):,} cycles per image")  # fmt: skip
    return {"file": source.file, "status": judged["status"], "provider": provider, "judge": judged, "cycles": counted}


def _source(bundle: Path) -> Artifact:
    manifest = read_manifest(bundle)
    source = manifest.artifact(SOURCE_FORMAT)
    if source is None:
        raise BundleError(f"{bundle}: no {SOURCE_FORMAT} model to compile (export it: --formats {SOURCE_FORMAT})")
    path = bundle / source.file
    if not path.is_file():
        raise BundleError(f"{path}: missing; the NPU compiles the bundle's int8 model")
    if sha256_file(path) != source.sha256:
        raise BundleError(f"{path}: its sha256 differs from the manifest's; export the bundle again")
    return source


def _reference(bundle: Path, count: int) -> np.ndarray:
    path = bundle / REFERENCE
    try:
        reference = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError):
        raise BundleError(f"{path}: missing or not a plain array file; the NPU files are judged against it") from None
    if reference.ndim != 2 or reference.shape[1] != 10 or len(reference) < count:
        raise BundleError(f"{path}: holds {reference.shape}, not Keras's answers on the test digits")
    return reference[:count].astype(np.float64)


def npu_options(
    bundle: str, names: list[str] | None, every: bool, verify: bool, limit: int | None, workers: int | None
) -> NpuOptions:
    """The command's options, checked before any long work: the SoCs (with ``verify`` and none named: those the
    manifest lists), a bundle with an intact int8 .tflite and Keras's answers."""
    folder = Path(bundle)
    _source(folder)
    _reference(folder, 1)
    if verify and not names and not every:
        listed = list(dict.fromkeys(e.get("soc") for e in read_manifest(folder).npu))
        if not listed:
            raise UsageError(f"{bundle}: nothing compiled for an NPU to verify (lenet-edge npu {bundle} --soc SOC)")
        names = [str(name) for name in listed]
    return NpuOptions(folder, parse_socs(names, every), limit, workers or 0, verify=verify)


def _candidates(bundle: Path, source: Artifact, workdir: Path, images: np.ndarray, rewrite: bool) -> list[Compiled]:
    """What the NPU may compile, preferred first: the bundle's int8 file with the row-shift split of its first
    convolution undone (rewrite.py), when it has one and answers bit for bit as the file in LiteRT on the CPU on
    the digits judged; the file as it is, always (last)."""
    path = bundle / source.file
    shipped = Compiled(path, GRAPH_SHIPPED, sha256_file(path), open_runner("litert", path).predict(images, raw=True))
    unsplit = workdir / "lenet5_int8_unsplit.tflite"
    if not rewrite or not write_unsplit(path, unsplit):
        return [shipped]
    raw = open_runner("litert", unsplit).predict(images, raw=True)
    if not np.array_equal(raw, shipped.cpu_raw):
        log(f"{source.file} with its first convolution whole answers otherwise on the CPU: compiled as it is")
        return [shipped]
    return [Compiled(unsplit, GRAPH_UNSPLIT, sha256_file(unsplit), raw), shipped]


def shipped_cycles(agent: Agent, shipped: Compiled, soc: Soc, glue: Path, images: np.ndarray, profiled: int) -> dict:
    """The bundle's int8 file as it is, compiled for ``soc`` in the workspace (not kept) and profiled on the same
    digits right after the file the NPU ships: the cycles the rewrite saves, side by side in one run."""
    names = (str(agent.root / f"shipped_{soc.model}.tflite"), str(agent.root / f"shipped_{soc.model}_ctx.onnx"))
    compiled = compile_soc(agent, agent.root, shipped.path, soc, glue, names)
    found: dict = {"graph": shipped.graph, "sha256": shipped.sha256, "status": compiled["status"]}
    if compiled["status"] != "pass":
        return found | {"reason": compiled["reason"]}
    simulated = simulate(agent, Path(names[1]), images[:profiled], 1, profiled, f"{soc.model}-shipped")
    return found | {"cycles": cycles(simulated["profile"], graph.nodes(shipped.path))}


def run_npu(options: NpuOptions, mnist: Mnist) -> tuple[int, dict]:
    """Compile, prove, judge and count for every SoC asked; 0 when every one passes, 1 when one does not (the
    others are still done). Returns (status, the report's ``npu`` section); the manifest gains the files."""
    bundle = options.bundle.resolve()  # the agent works in its own folder
    source = _source(bundle)
    count = len(mnist.x_test) if options.limit is None else min(options.limit, len(mnist.x_test))
    reference = _reference(bundle, count)
    images, labels = mnist.x_test[:count].reshape(-1, 28, 28, 1), mnist.y_test[:count]
    python, glue = npu_python(), glue_dir()
    workers = options.workers or min(usable_cores(), max(1, count // DIGITS_PER_WORKER))
    agent = Agent(python)
    try:
        tools = agent.run({"task": "versions"}, "versions")
        log(f"NPU tools: QNN {tools['qnn_sdk']} (onnxruntime-qnn {tools['onnxruntime-qnn']}), "
            f"LiteRT {tools['ai-edge-litert']} Qualcomm compiler plugin")  # fmt: skip
        manifest = read_manifest(bundle)
        if not options.verify:
            (bundle / FOLDER).mkdir(exist_ok=True)
        source_sha = sha256_file(bundle / source.file)
        candidates = _candidates(bundle, source, agent.root, images, options.rewrite)
        preferred, shipped = candidates[0], candidates[-1]
        alike = f" (it answers bit for bit as the file in LiteRT on the CPU on {count:,} digits)"
        log(f"the NPU's source: {source.file}, {preferred.graph}" + (alike if preferred is not shipped else ""))
        onnx_source = _intact(bundle, manifest.artifact(ONNX_FORMAT)) if options.onnx else None
        onnx_cpu = (
            None
            if onnx_source is None
            else open_runner("onnxruntime", bundle / onnx_source.file).predict(images, raw=True)
        )
        rows: list[dict] = []
        entries = [e for e in manifest.npu if e.get("soc") not in {s.model for s in options.socs}]
        for soc in options.socs:
            row: dict = {"soc": soc.to_dict()}
            recorded = [e for e in manifest.npu if e.get("soc") == soc.model]
            chosen = preferred
            if options.verify:
                row["compile"] = _recorded_check(bundle, recorded, source_sha, soc)
                entries += recorded
                found = next((c for c in candidates if recorded and c.sha256 == _compiled_sha(recorded[0])), None)
                if found is None and row["compile"]["status"] == "pass":
                    row["compile"] = {"status": "fail", "reason": f"{recorded[0]['file']}: compiled from a .tflite "
                                      f"that is neither {source.file} nor {GRAPH_UNSPLIT} as made here"}  # fmt: skip
                chosen = found or preferred
            elif _unchanged(bundle, recorded, source_sha, chosen.sha256, tools):
                kept = recorded[0]
                row["compile"] = {"status": "pass", "proof": kept["proof"], "context": kept.get("context", {}),
                                  "reused": True}  # fmt: skip
                log(f"{soc.model} ({soc.name}): compiled files unchanged, not recompiled")
            else:
                row["compile"] = compile_soc(agent, bundle, chosen.path, soc, glue)
            row["graph"] = chosen.graph
            compiled = row["compile"]
            if compiled["status"] != "pass":
                log(f"{soc.model} ({soc.name}): ❎ {compiled['reason']}")
                rows.append(row | {"status": "fail"})
                if not options.verify:  # what an earlier compile left for this SoC no longer stands
                    for name in file_names(soc):
                        (bundle / name).unlink(missing_ok=True)
                continue
            proof = compiled["proof"]
            log(f"{soc.model} ({soc.name}, HTP {soc.htp_arch}): {proof['ops_offloaded']} of {proof['ops_total']} ops "
                f"on the NPU, {proof['partitions']} partition, none left on the CPU")  # fmt: skip
            tflite, ctx = file_names(soc)
            log(f"  {ctx} in the HTP simulator: {count:,} digits in {workers} processes, then {options.profiled} "
                "profiled (about 30 ms a digit per process)…")  # fmt: skip
            start = time.perf_counter()
            simulated = simulate(agent, bundle / ctx, images, workers, options.profiled, soc.model)
            row["judge"] = judge(simulated["raw"], chosen.cpu_raw, source.output, reference, labels)
            row["judge"]["seconds"] = round(time.perf_counter() - start, 1)
            row["cycles"] = cycles(simulated["profile"], graph.nodes(chosen.path))
            row["status"] = row["judge"]["status"]
            j = row["judge"]
            log(f"  simulator on {count:,} digits: {j['accuracy']:.2%} (Keras {j['keras_accuracy']:.2%}), "
                f"{j['agreement_keras']:.2%} agree with Keras, {j['agreement_cpu']:.2%} with LiteRT CPU, up to "
                f"{j['max_step_diff_cpu']} steps apart ({j['identical_cpu']:.1%} identical); "
                f"{row['cycles'].get('median_per_image', 0):,} cycles per image ({j['seconds']:.0f} s)")  # fmt: skip
            if j["status"] != "pass":
                log(f"  ❎ {j['reason']}")
            if chosen is not shipped and options.profiled:
                row["shipped"] = shipped_cycles(agent, shipped, soc, glue, images, options.profiled)
                before = row["shipped"].get("cycles", {}).get("median_per_image")
                if before:
                    ratio = against_same_layers(row["cycles"], row["shipped"]["cycles"])
                    row["shipped"]["ratio_same_layers"] = ratio
                    log(f"  {source.file} {GRAPH_SHIPPED}, compiled and profiled beside it: {before:,} cycles per "
                        "image" + ("" if ratio is None else f"; the file compiled costs {ratio:.2f}× of it, in units "
                                   "of the layers both share"))  # fmt: skip
            if onnx_source is not None and onnx_cpu is not None:
                row["onnx"] = judge_onnx(agent, bundle, onnx_source, soc, images, workers, options.profiled, labels,
                                         reference, onnx_cpu)  # fmt: skip
                if row["onnx"]["status"] != "pass":
                    row["status"] = "fail"
            for form, name in () if options.verify else (("litert", tflite), ("onnxruntime-qnn", ctx)):
                entries.append({
                    "soc": soc.model, "name": soc.name, "htp_arch": soc.htp_arch, "form": form, "file": name,
                    "bytes": (bundle / name).stat().st_size, "sha256": sha256_file(bundle / name),
                    "source": {"format": source.format, "file": source.file, "sha256": source_sha,
                               "graph": chosen.graph, "compiled_sha256": chosen.sha256},
                    "tools": tools, "proof": proof, "context": compiled["context"],
                })  # fmt: skip
            rows.append(row)
        if not options.verify:
            write_manifest(bundle, replace(read_manifest(bundle), npu=sorted(entries, key=lambda e: e["file"])))
    finally:
        agent.close()
    cpu, _ = cpu_model()
    section = {
        "info": {"simulator": SIMULATOR, "tools": tools, "host": cpu, "workers": workers, "images": count,
                 "source": {"format": source.format, "file": source.file, "sha256": source_sha,
                            "graph": preferred.graph, "compiled_sha256": preferred.sha256}},
        "socs": rows,
    }  # fmt: skip
    return (0 if all(r["status"] == "pass" for r in rows) else 1), section
