"""What a mount was asked to be: source, mountpoint and every option, validated in one place."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from octuefs.cache import DEFAULT_CHUNK_SIZE
from octuefs.errors import InvalidInputException
from octuefs.logs import LOG_FORMATS
from octuefs.reader import default_cache_directory

SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_size(text: str) -> int:
    """`10G`, `512M`, `1.5T`, `4096`: binary units, as du and gcsfuse read them."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if not match:
        raise InvalidInputException(f"size {text!r} is not a number with an optional K/M/G/T unit.")
    return int(float(match.group(1)) * SIZE_UNITS[match.group(2).upper()])


def parse_mode(text: str) -> int:
    try:
        mode = int(text, 8)
    except ValueError:
        raise InvalidInputException(f"mode {text!r} is not an octal permission like 644.") from None
    if not 0 <= mode <= 0o7777:
        raise InvalidInputException(f"mode {text!r} is out of range.")
    return mode


def parse_interval(text: str) -> float:
    """Seconds between retries: a wait of zero or less would retry in a tight loop."""
    seconds = float(text)
    if not seconds > 0:
        raise InvalidInputException(f"interval {text!r} is not a positive number of seconds.")
    return seconds


def parse_log_format(text: str) -> str:
    if text not in LOG_FORMATS:
        raise InvalidInputException(f"log format {text!r}: use one of {', '.join(LOG_FORMATS)}.")
    return text


def parse_source(source: str) -> tuple[str, str]:
    """`bucket`, `bucket/prefix` or `gs://bucket[/prefix]` → (bucket, prefix without slashes at the ends)."""
    rest = source.removeprefix("gs://")
    bucket, _, prefix = rest.partition("/")
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]", bucket):
        raise InvalidInputException(f"source {source!r}: {bucket!r} is not a valid bucket name.")
    return bucket, prefix.strip("/")


@dataclass(frozen=True)
class MountConfig:
    bucket: str
    prefix: str
    mountpoint: Path
    endpoint: str | None = None
    cache_dir: Path | None = None
    cache_size: int = 10 * 1024**3
    read_only: bool = False
    allow_other: bool = False
    uid: int = os.getuid()
    gid: int = os.getgid()
    file_mode: int = 0o644
    dir_mode: int = 0o755
    metadata_ttl: float = 60.0
    log_file: Path | None = None
    debug: bool = False
    log_format: str = "text"
    foreground: bool = False
    chunk_size: int = DEFAULT_CHUNK_SIZE
    max_readahead: int = 32 * 1024 * 1024
    # The kernel's readahead for the mount (fs/readahead.py): lets it send 1 MiB reads instead of 128 KiB.
    kernel_readahead: int = 4 * 1024 * 1024
    storage_threads: int = 16
    # Seconds an operation retries transient failures before EIO; why 20, see StorageSettings.
    retry_deadline: float = 20.0
    # Seconds past the metadata TTL that what was last known of a file or directory is still served
    # while the server is unavailable (stale-if-error, as in RFC 5861); 0 answers EIO as soon as a
    # refresh fails. Unbounded by default: a mount offline for hours still shows what it last saw.
    stale_if_error: float = float("inf")
    # The longest wait between attempts to upload a closed file while the server is away (see core/landing.py).
    landing_interval: float = 30.0
    # On SIGTERM, SIGINT or SIGHUP: how long operations in progress (uploads) may take to finish.
    stop_timeout: float = 20.0
    metrics_port: int | None = None
    # Loopback unless asked: the counters name no secrets, but a mount should not open a port to the network
    # by itself. In a container, Prometheus reaches the pod's address, so the image binds 0.0.0.0.
    metrics_address: str = "127.0.0.1"
    # Show stored owners, and stored modes as they are (see fs/posix.py); off, a bucket only takes away.
    trust_stored_owners: bool = False
    # The options the user gave (not defaults): a given uid, gid or file_mode wins over stored values.
    given_options: frozenset[str] = frozenset()

    @property
    def source(self) -> str:
        return f"gs://{self.bucket}/{self.prefix}".rstrip("/")

    @property
    def resolved_cache_dir(self) -> Path:
        """Per-source by default, so a remount of the same bucket and prefix finds its chunks again."""
        if self.cache_dir is not None:
            return self.cache_dir
        digest = hashlib.sha256(self.source.encode()).hexdigest()[:16]
        return default_cache_directory() / "mounts" / digest

    @property
    def lost_and_found(self) -> Path:
        """Where staged bytes go that could not be uploaded without replacing another writer's object."""
        return self.resolved_cache_dir / "lost+found"

    @property
    def resolved_log_file(self) -> Path | None:
        if self.log_file is not None or self.foreground:
            return self.log_file
        return self.resolved_cache_dir / "octuefs.log"
