"""Targets: the emulated ARM64 userland (parity, the XNNPACK check, repeatable instruction counts) and a real
sshd on 127.0.0.1. Needs qemu-user, debootstrap and openssh-server (installed by .ci/run) and the userland
from `lenet-edge target setup arm64-emu`; without them these tests skip, except under CI=true."""

from __future__ import annotations

import contextlib
import getpass
import json
import shutil
import socket
import subprocess
import time
from importlib import metadata
from pathlib import Path

import pytest
from conftest import manifest_json, require, slow_fixture

from lenet_edge.cli import main
from lenet_edge.files import write_json
from lenet_edge.formats import BY_NAME, FORMATS, PRECISIONS
from lenet_edge.targets import TargetError, arm64_emu, parse_target
from lenet_edge.targets.jobs import parity_row, verify_on_target


def test_target_names_parse_or_fail_clearly():
    assert parse_target("local").kind == "local"
    emulated = parse_target("arm64-emu")
    assert (emulated.kind, emulated.core, emulated.name) == ("emulated", "cortex-a76", "arm64-emu:cortex-a76")
    assert parse_target("arm64-emu:cortex-a53").core == "cortex-a53"
    device = parse_target("ssh://pi@raspberrypi.local:2222?python=/opt/venv/bin/python")
    assert (device.kind, device.name, device.python) == (
        "device",
        "ssh://pi@raspberrypi.local:2222",
        "/opt/venv/bin/python",
    )
    assert device.argv("true")[-2:] == ["pi@raspberrypi.local", "true"] and "BatchMode=yes" in device.argv("true")


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("arm64-emu:cortex-a9", "unknown core 'cortex-a9'"),
        ("android", "unknown target 'android'"),
        ("ssh://pi@host:99999", "port is not a number"),
        ("ssh://pi@host?pyhton=x", "unknown option pyhton"),
        ("ssh://pi@host?key=/no/such/key", "key file /no/such/key not found"),
    ],
)
def test_bad_targets_get_one_line_errors(tiny_bundle, mnist_dir, capsys, target, message):
    assert main(["verify", str(tiny_bundle), "--data", str(mnist_dir), "--target", target]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_parity_gate_counts_quantization_steps():
    import numpy as np

    labels = np.array([0, 1])
    local = np.array([[200, 10], [5, 250]], np.uint8)
    entry = BY_NAME["tflite-int8"]
    one_step = parity_row(entry, local, local + np.array([[1, 0], [0, 0]], np.uint8), {"scale": 1 / 256}, labels)
    assert (one_step["status"], one_step["max_delta"], one_step["delta_unit"]) == ("pass", 1.0, "steps")
    far = parity_row(entry, local, local + np.array([[0, 3], [0, 0]], np.uint8), {"scale": 1 / 256}, labels)
    assert far["status"] == "fail" and "3 steps > 2" in far["reason"]
    float_entry = BY_NAME["onnx-fp32"]
    probs = np.array([[0.9, 0.1], [0.2, 0.8]], np.float32)
    flipped = parity_row(float_entry, probs, probs[:, ::-1].copy(), {"scale": None}, labels)
    assert flipped["status"] == "fail" and flipped["agreement"] == 0.0
    assert PRECISIONS["fp32"].parity.min_agreement == 1.0


# --- the emulated ARM64 target ----------------------------------------------------------------------------


@slow_fixture(scope="session")
def userland() -> Path:
    for tool in ("qemu-aarch64", "setarch"):
        require(shutil.which(tool) is not None, f"{tool} missing: apt-get install qemu-user util-linux")
    record = arm64_emu.status()
    require(record is not None, "arm64-emu is not set up: run `lenet-edge target setup arm64-emu`")
    require(arm64_emu.current(record), "arm64-emu userland is stale: run `lenet-edge target setup arm64-emu`")
    return arm64_emu.home()


def _only(bundle: Path, formats: tuple[str, ...], tmp_path: Path) -> Path:
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    manifest = manifest_json(copy)
    manifest["artifacts"] = [a for a in manifest["artifacts"] if a["format"] in formats]
    write_json(copy / "manifest.json", manifest)
    return copy


def test_emulated_arm64_answers_like_x86(userland, trained_bundle, mnist_dir, tmp_path):
    bundle = _only(trained_bundle, ("tflite-fp32", "tflite-int8", "onnx-fp32", "onnx-int8"), tmp_path)
    out = tmp_path / "rows.json"
    args = ["verify", str(bundle), "--data", str(mnist_dir), "--target", "arm64-emu", "--limit", "500"]
    assert main([*args, "--json", str(out)]) == 0
    rows = {row["format"]: row for row in json.loads(out.read_text())}
    assert set(rows) == {"tflite-fp32", "tflite-int8", "onnx-fp32", "onnx-int8"}
    for row in rows.values():
        assert row["status"] == "pass" and row["agreement"] >= 0.999, row
    for fmt in ("tflite-fp32", "onnx-fp32"):
        assert rows[fmt]["agreement"] == 1.0 and rows[fmt]["max_delta"] <= 1e-5
    assert rows["tflite-int8"]["delta_unit"] == "steps" and rows["tflite-int8"]["max_delta"] <= 2
    assert rows["tflite-int8"]["xnnpack_partitions"] >= 1 and rows["tflite-fp32"]["xnnpack_partitions"] >= 1
    report = json.loads((bundle / "report.json").read_text())["targets"]["arm64-emu:cortex-a76"]
    identity = report["identity"]
    assert (identity["machine"], identity["cpu"], identity["core"]) == ("aarch64", "ARM Cortex-A76", "cortex-a76")
    # the trap: without manylinux_2_27, pip picks ai-edge-litert 1.4 for aarch64
    assert identity["versions"]["ai-edge-litert"] == metadata.version("ai-edge-litert")
    assert identity["versions"]["onnxruntime"] == metadata.version("onnxruntime")
    assert "### Parity on arm64-emu:cortex-a76" in (bundle / "report.md").read_text()


def test_a_guest_without_cpu_topology_fails_loudly(userland, trained_bundle, mnist, tmp_path, monkeypatch):
    """Empty /sys/devices/system/cpu/{possible,present,online}: LiteRT silently skips XNNPACK. We must not."""
    home = tmp_path / "arm64"
    (home / "cores").mkdir(parents=True)
    for name in ("rootfs", "ready.json"):
        (home / name).symlink_to(userland / name)
    view = home / "cores" / "cortex-a76"
    shutil.copytree(userland / "cores" / "cortex-a76", view, symlinks=True)
    for name in ("possible", "present", "online"):
        (view / "sys/devices/system/cpu" / name).write_text("")
    monkeypatch.setattr(arm64_emu, "home", lambda: home)
    bundle = _only(trained_bundle, ("tflite-fp32",), tmp_path)
    with pytest.raises(TargetError, match="XNNPACK delegate was not created"):
        verify_on_target(bundle, mnist, parse_target("arm64-emu"), limit=10)


def test_instruction_counts_repeat_exactly(userland, trained_bundle, mnist_dir, tmp_path):
    bundle = _only(trained_bundle, ("tflite-fp32", "tflite-int8", "onnx-int8"), tmp_path)
    runs = []
    for core in ("cortex-a76", "cortex-a76", "cortex-a53"):
        out = tmp_path / f"{core}-{len(runs)}.json"
        args = ["cost", str(bundle), "--data", str(mnist_dir), "--target", f"arm64-emu:{core}", "--calls", "5"]
        assert main([*args, "--json", str(out)]) == 0
        runs.append({row["format"]: row for row in json.loads(out.read_text())})
    first, second, a53 = runs
    for fmt in ("tflite-fp32", "tflite-int8"):
        assert first[fmt]["instructions_per_image"] == second[fmt]["instructions_per_image"]
        assert 1e5 < first[fmt]["instructions_per_image"] < 1e8
        assert a53[fmt]["instructions_per_image"] != first[fmt]["instructions_per_image"]  # other kernels
    # ONNX Runtime repeats to within a few thousand instructions in a million (0.14% apart seen once)
    assert first["onnx-int8"]["instructions_per_image"] == pytest.approx(
        second["onnx-int8"]["instructions_per_image"], rel=3e-3
    )
    assert first["tflite-int8"]["vs_fp32"] == round(
        first["tflite-int8"]["instructions_per_image"] / first["tflite-fp32"]["instructions_per_image"], 3
    )
    markdown = (bundle / "report.md").read_text()
    assert "## Mobile-class targets" in markdown and "| Format | Runtime | cortex-a53 | cortex-a76 |" in markdown
    assert "cheapest is" in markdown and (bundle / "targets_cost.png").read_bytes()[:4] == b"\x89PNG"


# --- a real device over SSH: sshd on 127.0.0.1 --------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@slow_fixture()
def loopback_sshd(tmp_path):
    """sshd on 127.0.0.1 only, with a generated host key and client key; yields the target URL's parts."""
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    require(Path(sshd).exists() and shutil.which("ssh") is not None, "openssh-server missing: apt-get install it")
    keys = tmp_path / "ssh"
    keys.mkdir(mode=0o700)
    for name in ("host", "client"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / name)], check=True)
    (keys / "authorized_keys").write_text((keys / "client.pub").read_text())
    port = _free_port()
    (keys / "known_hosts").write_text(f"[127.0.0.1]:{port} {(keys / 'host.pub').read_text()}")
    config = keys / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {keys / 'host'}\n"
        f"AuthorizedKeysFile {keys / 'authorized_keys'}\nPidFile {keys / 'sshd.pid'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "StrictModes no\nPermitRootLogin prohibit-password\n"
    )
    with contextlib.suppress(PermissionError):  # sshd's privilege separation folder (root only)
        Path("/run/sshd").mkdir(exist_ok=True)
    with open(keys / "sshd.log", "w") as log:
        server = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stderr=log)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    else:
        server.kill()
        pytest.fail(f"sshd did not start: {(keys / 'sshd.log').read_text()}")
    yield {"user": getpass.getuser(), "port": port, "key": keys / "client", "known_hosts": keys / "known_hosts"}
    server.terminate()
    server.wait(timeout=10)


def test_ssh_device_verify_and_bench(loopback_sshd, runtime_only_python, trained_bundle, mnist_dir, tmp_path):
    s = loopback_sshd
    url = (
        f"ssh://{s['user']}@127.0.0.1:{s['port']}?python={runtime_only_python}&key={s['key']}"
        f"&known_hosts={s['known_hosts']}"
    )
    bundle = tmp_path / "bundle"
    shutil.copytree(trained_bundle, bundle)
    out = tmp_path / "rows.json"
    common = ["--data", str(mnist_dir), "--target", url]
    assert main(["verify", str(bundle), *common, "--limit", "300", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert len(rows) == len(FORMATS) and all(r["status"] == "pass" and r["agreement"] == 1.0 for r in rows)
    assert main(["bench", str(bundle), *common, "--profile", "mobile", "--seconds", "0.05", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert {r["format"] for r in rows} == {a["format"] for a in manifest_json(bundle)["artifacts"]} - {"keras"}
    assert all(r["p50_us"] > 0 and r["profile"] == "mobile" for r in rows)
    name = f"ssh://{s['user']}@127.0.0.1:{s['port']}"
    report = json.loads((bundle / "report.json").read_text())["targets"][name]
    assert report["identity"]["kind"] == "device" and report["identity"]["machine"]
    assert f"### Speed on {name}: mobile profile" in (bundle / "report.md").read_text()


def test_ssh_refuses_an_unknown_host_key(loopback_sshd, trained_bundle, mnist_dir, capsys, tmp_path):
    s = loopback_sshd
    (tmp_path / "empty_known_hosts").write_text("")
    url = f"ssh://{s['user']}@127.0.0.1:{s['port']}?key={s['key']}&known_hosts={tmp_path / 'empty_known_hosts'}"
    assert main(["verify", str(trained_bundle), "--data", str(mnist_dir), "--target", url, "--limit", "10"]) == 1
    err = capsys.readouterr().err
    assert "Host key verification failed" in err and "Traceback" not in err


def test_a_one_runtime_device_answers_for_what_it_has(tiny_bundle, mnist, tmp_path, monkeypatch):
    """The agent on a device with LiteRT only: the .tflite files answer; the .onnx files come back as not run,
    with the pip command that would add their runtime, instead of failing the whole job."""
    import sys

    import numpy as np

    from lenet_edge.targets import agent as target_agent

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # this device has no ONNX Runtime
    monkeypatch.chdir(tmp_path)
    np.save("images.npy", mnist.x_test[:5])
    entries = [
        {"format": a["format"], "runtime": a["runtime"], "file": str(tiny_bundle / a["file"])}
        for a in manifest_json(tiny_bundle)["artifacts"]
        if a["format"] in ("tflite-int8", "onnx-fp32", "onnx-int8")
    ]
    answer = {
        item["format"]: item
        for item in target_agent.predict({"images": "images.npy", "artifacts": entries})["artifacts"]
    }
    assert answer["onnx-fp32"] == {
        "format": "onnx-fp32",
        "not_run": "onnxruntime is not installed here (pip install onnxruntime)",
    }
    assert "not_run" in answer["onnx-int8"] and "not_run" not in answer["tflite-int8"]
    assert np.load(tmp_path / "out" / "tflite-int8.npy").shape == (5, 10)
    assert not (tmp_path / "out" / "onnx-fp32.npy").exists()
