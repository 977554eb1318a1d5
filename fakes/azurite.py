"""Start and stop the Azurite storage emulator (installed from npm into the checkout).

Tests, the demo and the benchmarks need real Table and Queue storage. Azurite is started
on free loopback ports so it never collides with another copy already running, and the
connection string names those ports explicitly (`UseDevelopmentStorage=true` would mean
the fixed default ports).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The emulator's published development account; not a secret.
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class AzuriteError(RuntimeError):
    """Azurite could not be started; the message says what to do."""


@dataclass
class Azurite:
    """A running emulator and the connection string that reaches it."""

    process: subprocess.Popen[bytes]
    location: Path
    blob_port: int
    queue_port: int
    table_port: int
    owns_location: bool

    @property
    def connection_string(self) -> str:
        host = "http://127.0.0.1"
        return (
            f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
            f"BlobEndpoint={host}:{self.blob_port}/{DEV_ACCOUNT};"
            f"QueueEndpoint={host}:{self.queue_port}/{DEV_ACCOUNT};"
            f"TableEndpoint={host}:{self.table_port}/{DEV_ACCOUNT};"
        )

    def stop(self) -> None:
        self._end_process()
        if self.owns_location:
            shutil.rmtree(self.location, ignore_errors=True)

    def restart(self, *, while_down: Callable[[], object] | None = None, startup_timeout: float = 30.0) -> None:
        """Stop the emulator and start it again on the same ports and data directory.

        What it stored survives (Azurite writes its data to `location` when it shuts down),
        and the connection string stays valid, as after a storage service's restart.
        `while_down` runs while nothing listens (to see what fails meanwhile).
        """
        self._end_process()
        try:
            if while_down is not None:
                while_down()
        finally:
            self.process = _launch(self.location, [self.blob_port, self.queue_port, self.table_port])
            _wait_until_listening(self, startup_timeout)

    def _end_process(self) -> None:
        if self.process.poll() is None:
            # npx/node may spawn children: end the whole process group (SIGTERM lets it save its data).
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)

    def __enter__(self) -> Azurite:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def azurite_binary() -> Path:
    binary = PROJECT_ROOT / "node_modules" / ".bin" / "azurite"
    if not binary.exists():
        raise AzuriteError("Azurite is not installed in this checkout: run `make setup` (npm ci) first")
    return binary


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start_azurite(location: Path | None = None, startup_timeout: float = 30.0) -> Azurite:
    """Start Azurite in its own process group and wait until all three services listen."""
    owns = location is None
    workdir = Path(tempfile.mkdtemp(prefix="azurite-")) if location is None else location
    workdir.mkdir(parents=True, exist_ok=True)
    ports = [_free_port(), _free_port(), _free_port()]
    emulator = Azurite(_launch(workdir, ports), workdir, *ports, owns_location=owns)
    _wait_until_listening(emulator, startup_timeout)
    return emulator


def _launch(workdir: Path, ports: list[int]) -> subprocess.Popen[bytes]:
    """Start the emulator process (blob, queue and table on `ports`, data in `workdir`)."""
    command = [
        str(azurite_binary()),
        "--silent",
        "--loose",
        "--skipApiVersionCheck",
        "--disableTelemetry",
        "--location",
        str(workdir),
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(ports[0]),
        "--queueHost",
        "127.0.0.1",
        "--queuePort",
        str(ports[1]),
        "--tableHost",
        "127.0.0.1",
        "--tablePort",
        str(ports[2]),
    ]
    log = open(workdir / "azurite.log", "ab")  # noqa: SIM115 - lives as long as the process
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # noqa: S603


def _wait_until_listening(emulator: Azurite, startup_timeout: float) -> None:
    ports = [emulator.blob_port, emulator.queue_port, emulator.table_port]
    deadline = time.monotonic() + startup_timeout
    while not all(_listening(port) for port in ports):
        if emulator.process.poll() is not None:
            code = emulator.process.returncode
            emulator.stop()
            raise AzuriteError(f"Azurite exited at start (code {code}); see {emulator.location / 'azurite.log'}")
        if time.monotonic() > deadline:
            emulator.stop()
            raise AzuriteError(f"Azurite did not listen within {startup_timeout:.0f}s")
        time.sleep(0.1)
