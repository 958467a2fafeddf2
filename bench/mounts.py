"""`python -m bench.mounts`: aggregate read throughput of 1, 2 and 4 octuefs containers over one bucket.

Each container (the image of scripts/build-image.sh, on the host's network) mounts the same bucket of
the bundled server with an empty cache and reads a file of its own; all start together (they wait for
a flag file) and the aggregate is all bytes read over the span from the first start to the last end,
measured on the one clock the containers share with the host. The best of the repetitions is kept.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from bench.harness import REPOSITORY, MiB, format_rate, storage_client, wait_for
from octuefs.local_server import free_port, start_server

PODMAN_ENVIRONMENT = {**os.environ, "CONTAINERS_CONF": str(REPOSITORY / "deploy" / "podman" / "containers.conf")}
# Says it is ready, waits for /flags/go, reads the file in 1 MiB blocks, prints start, end and bytes
# (host clock, seconds).
TIMED_READ = """
import json, os, sys, time
open("/flags/ready-" + os.path.basename(sys.argv[1]), "w").close()
while not os.path.exists("/flags/go"):
    time.sleep(0.002)
started, count = time.time(), 0
with open(sys.argv[1], "rb", buffering=0) as file:
    while block := file.read(1 << 20):
        count += len(block)
print(json.dumps({"started": started, "ended": time.time(), "bytes": count}))
"""


def podman(*arguments: str, timeout: float = 120) -> str:
    result = subprocess.run(
        ["podman", *arguments], capture_output=True, text=True, timeout=timeout, env=PODMAN_ENVIRONMENT
    )
    if result.returncode != 0:
        raise RuntimeError(f"podman {' '.join(arguments[:2])} failed: {result.stderr.strip()}")
    return result.stdout


def start_mount(image: str, bucket: str, endpoint: str, flags: Path) -> str:
    name = f"octuefs-bench-{uuid.uuid4().hex[:12]}"
    podman(
        "run", "--detach", "--name", name, "--network", "host", "--device", "/dev/fuse", "--cap-add", "SYS_ADMIN",
        "--env", f"OCTUEFS_METRICS_PORT={free_port()}", "--volume", f"{flags}:/flags", image, bucket,
        "--endpoint", endpoint,
    )  # fmt: skip
    wait_for(lambda: subprocess.run(
        ["podman", "exec", name, "octuefs", "stats", "/mnt/bucket"], capture_output=True, env=PODMAN_ENVIRONMENT
    ).returncode == 0, f"{name} mounted", timeout=60)  # fmt: skip
    return name


def aggregate_rate(image: str, bucket: str, endpoint: str, mounts: int) -> float:
    """Bytes per second of `mounts` fresh containers reading one file each at once."""
    with tempfile.TemporaryDirectory() as flags_directory:
        flags = Path(flags_directory)
        names: list[str] = []
        try:
            names = [start_mount(image, bucket, endpoint, flags) for _ in range(mounts)]
            readers = [
                subprocess.Popen(["podman", "exec", name, "python3", "-c", TIMED_READ, f"/mnt/bucket/file-{index}.bin"],
                                 stdout=subprocess.PIPE, text=True, env=PODMAN_ENVIRONMENT)
                for index, name in enumerate(names)
            ]  # fmt: skip
            wait_for(lambda: len(list(flags.glob("ready-*"))) == mounts, "every reader ready", timeout=60)
            (flags / "go").touch()
            results = [json.loads(reader.communicate(timeout=300)[0]) for reader in readers]
        finally:
            for name in names:
                podman("rm", "--force", "--time", "10", name)
    span = max(result["ended"] for result in results) - min(result["started"] for result in results)
    return sum(result["bytes"] for result in results) / span


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file-size", type=int, default=64, help="MiB read by each container (default 64)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions per mount count; the best is kept")
    arguments = parser.parse_args(argv)
    image = subprocess.run(
        ["bash", REPOSITORY / "scripts" / "build-image.sh"], capture_output=True, text=True, check=True
    ).stdout.split()[-1]
    server = start_server()
    try:
        bucket = storage_client(server.url).create_bucket(f"bench-{uuid.uuid4().hex[:8]}")
        for index in range(4):
            bucket.blob(f"file-{index}.bin").upload_from_string(os.urandom(arguments.file_size * MiB))
        for mounts in (1, 2, 4):
            rates = [aggregate_rate(image, bucket.name, server.url, mounts) for _ in range(arguments.repeat)]
            print(f"{mounts} mount(s): best {format_rate(max(rates))} aggregate "
                f"({', '.join(format_rate(rate) for rate in rates)}); {arguments.file_size} MiB each")  # fmt: skip
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
