"""A real device over SSH: a Raspberry Pi, a Jetson, a phone with Termux. The device needs Python 3.10+ and the
runtime-only install (``pip install lenet-edge``: NumPy, ai-edge-litert, onnxruntime); the project's code
for the job is copied with the bundle, so both ends run the same code.

``ssh://user@host[:port][?python=PATH&key=FILE&known_hosts=FILE]``: ``python`` is the device's interpreter
(default ``python3``), ``key`` an identity file, ``known_hosts`` a known-hosts file. The system ``ssh``
client is used as configured (``~/.ssh/config`` applies), in batch mode: no password prompts, and an unknown
host key is refused, never accepted silently."""

from __future__ import annotations

import io
import json
import shlex
import subprocess
import tarfile
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from ..errors import UsageError
from .base import CODE, PACKAGE_DIR, Target, TargetError, Workspace, agent_answer

OPTIONS = ("python", "key", "known_hosts")


class SshWorkspace(Workspace):
    """A ``mktemp -d`` folder on the device; files go over as one tar stream, each way."""

    target: SshTarget

    def __enter__(self) -> SshWorkspace:
        self.root = self.target.ssh("mktemp -d -t lenet-edge-XXXXXX", what="making a workspace").strip()
        if not self.root.startswith("/"):
            raise TargetError(f"{self.target.name}: mktemp answered {self.root!r}, not a folder")
        self.put({f"{CODE}/lenet_edge": PACKAGE_DIR})
        return self

    def __exit__(self, *exc) -> None:
        self.target.ssh(f"rm -rf {shlex.quote(self.root)}", what="removing the workspace", check=False)

    def put(self, files: dict[str, Path]) -> None:
        stream = io.BytesIO()
        with tarfile.open(fileobj=stream, mode="w") as tar:
            for name, source in files.items():
                tar.add(source, arcname=name, filter=_no_caches)
        self.target.ssh(f"tar -x -C {shlex.quote(self.root)}", data=stream.getvalue(), what="copying files")

    def get(self, name: str, local: Path) -> Path:
        path = shlex.quote(f"{self.root}/{name}")
        local.write_bytes(self.target.ssh(f"cat {path}", what=f"fetching {name}", raw=True))
        return local

    def run(self, job: dict, plugin_out: Path | None = None) -> dict:
        if plugin_out is not None:
            raise TargetError(f"{self.target.name}: instruction counting needs the emulated target")
        root = shlex.quote(self.root)
        command = (
            f"cd {root} && printf %s {shlex.quote(json.dumps(job))} > job.json && "
            f"PYTHONPATH={root}/{CODE} exec {shlex.quote(self.target.python)} -m lenet_edge.targets.agent job.json"
        )
        done = self.target.ssh_process(command, capture_stderr=False)
        return agent_answer(done.returncode, done.stdout.decode(), self.target.name)


def _no_caches(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    return None if "__pycache__" in info.name or info.name.endswith((".pyc", ".so")) else info


class SshTarget(Target):
    kind = "device"

    def __init__(self, user: str | None, host: str, port: int | None, options: dict[str, str]):
        self.user, self.host, self.port = user, host, port
        self.python = options.get("python", "python3")
        self.options = options
        where = f"{user}@{host}" if user else host
        self.name = f"ssh://{where}" + (f":{port}" if port else "")
        self.destination = where

    @classmethod
    def from_url(cls, url: str) -> SshTarget:
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            raise UsageError(f"{url}: the port is not a number from 1 to 65535") from None
        if not parts.hostname or parts.path not in ("", "/"):
            raise UsageError(f"{url}: expected ssh://user@host[:port][?python=PATH&key=FILE&known_hosts=FILE]")
        query = parse_qs(parts.query, keep_blank_values=True)
        unknown = sorted(set(query) - set(OPTIONS))
        if unknown:
            raise UsageError(f"{url}: unknown option {', '.join(unknown)} (known: {', '.join(OPTIONS)})")
        options = {key: values[-1] for key, values in query.items()}
        for key in ("key", "known_hosts"):
            if key in options and not Path(options[key]).expanduser().is_file():
                raise UsageError(f"{url}: {key} file {options[key]} not found")
        return cls(parts.username, parts.hostname, port, options)

    def argv(self, command: str) -> list[str]:
        args = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=15", "-o", "ServerAliveInterval=15"]
        if self.port:
            args += ["-p", str(self.port)]
        if "key" in self.options:
            args += ["-i", str(Path(self.options["key"]).expanduser()), "-o", "IdentitiesOnly=yes"]
        if "known_hosts" in self.options:
            args += ["-o", f"UserKnownHostsFile={Path(self.options['known_hosts']).expanduser()}"]
        return [*args, "--", self.destination, command]

    def ssh_process(self, command: str, data: bytes | None = None, capture_stderr: bool = True):
        try:
            return subprocess.run(
                self.argv(command), input=data if data is not None else b"", stdout=subprocess.PIPE,
                stderr=subprocess.PIPE if capture_stderr else None,
            )  # fmt: skip
        except FileNotFoundError:
            raise TargetError("no ssh client here: apt-get install openssh-client") from None

    def ssh(self, command: str, what: str, data: bytes | None = None, raw: bool = False, check: bool = True):
        done = self.ssh_process(command, data)
        if check and done.returncode != 0:
            message = done.stderr.decode(errors="replace").strip().splitlines()
            reason = message[-1] if message else f"exit code {done.returncode}"
            raise TargetError(f"{self.name}: {what} failed: {reason}")
        return done.stdout if raw else done.stdout.decode()

    def workspace(self) -> Workspace:
        return SshWorkspace(self)
