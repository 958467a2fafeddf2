"""`octuefs mount`, also in the `octuefs SOURCE MOUNTPOINT -o OPTIONS` form of mount helpers (the
parser of `octuefs unmount` is added here too; the command is in unmount.py).

Problems that can be found before mounting (no FUSE, bad mountpoint, server down, no bucket)
are reported by the command itself. Otherwise the daemon is forked *before* trio, threads or the
storage client exist, and the command returns only once the child reports the mount ready
through a pipe, or exits non-zero with the child's error (as s3ql and gcsfuse do).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from octuefs.cli.mountpoints import resolve_mountpoint
from octuefs.cli.unmount import add_arguments as add_unmount_arguments
from octuefs.cli.unmount import run_unmount
from octuefs.errors import InvalidInputException, MountError, StorageError
from octuefs.fs.config import MountConfig, parse_interval, parse_log_format, parse_mode, parse_size, parse_source
from octuefs.fs.runtime import prepare_runtime_directory
from octuefs.private_files import PRIVATE_UMASK, check_shared_directory, make_directories


@dataclass(frozen=True)
class Option:
    name: str
    parse: Callable[[str], Any] | None  # None: a flag without value
    help: str


OPTIONS = (
    Option("endpoint", str, "GCS-compatible endpoint URL (default: STORAGE_EMULATOR_HOST, else Google Cloud)"),
    Option("cache_dir", Path, "where chunks are cached (default: ~/.cache/octuefs/mounts/<source hash>)"),
    Option("cache_size", parse_size, "bound of the chunk cache, e.g. 10G (default 10G)"),
    Option("read_only", None, "mount read-only (metadata cannot be changed either)"),
    Option("allow_other", None, "let other users access the mount (needs user_allow_other in /etc/fuse.conf)"),
    Option("uid", int, "owner of every file (default: the mounting user)"),
    Option("gid", int, "group of every file (default: the mounting user's group)"),
    Option("file_mode", parse_mode, "permission bits of files, octal (default 644); a stored mode only narrows them"),
    Option(
        "dir_mode", parse_mode, "permission bits of directories, octal (default 755); a stored mode only narrows them"
    ),
    Option(
        "trust_stored_owners",
        None,
        "show the owner and mode stored on each object (goog-reserved-posix-*) as they are and store chown; "
        "only for single-tenant buckets: anyone who can write the bucket then picks owners and modes",
    ),
    Option("metadata_ttl", float, "seconds that listings and attributes are trusted (default 60)"),
    Option("log_file", Path, "daemon log (default: octuefs.log in the cache directory)"),
    Option("debug", None, "log every FUSE operation and storage request"),
    Option("log_format", parse_log_format, "text (default) or json: one JSON object a line, with fields"),
    Option("foreground", None, "stay in the foreground instead of daemonizing"),
    Option("chunk_size", parse_size, "size of ranged reads and cached chunks (default 1M)"),
    Option("max_readahead", parse_size, "how far ahead sequential reads are fetched (default 32M)"),
    Option(
        "kernel_readahead",
        parse_size,
        "the kernel's readahead for the mount, which bounds its read requests (default 4M; needs root, "
        "others keep the kernel's 128K)",
    ),
    Option("metrics_port", int, "serve Prometheus metrics on ADDRESS:PORT/metrics"),
    Option("metrics_address", str, "address the metrics are served on (default 127.0.0.1; 0.0.0.0 in a pod)"),
    Option(
        "retry_deadline",
        float,
        "seconds to keep retrying a failing request before EIO (default 20); once the server is found "
        "unreachable, requests fail at once until a probe (every 2 s) reaches it again",
    ),
    Option(
        "stale_if_error",
        float,
        "seconds past the metadata TTL that cached attributes and listings are served while the server is "
        "unreachable (default inf: no limit; 0: fail instead)",
    ),
    Option(
        "landing_interval",
        parse_interval,
        "longest wait in seconds between attempts to upload a closed file while the server is away (default 30)",
    ),
    Option(
        "stop_timeout",
        float,
        "seconds that uploads in progress get to finish on SIGTERM, SIGINT or SIGHUP; what is left stays "
        "staged and goes up at the next mount with this cache directory (default 20)",
    ),
)
OPTIONS_BY_NAME = {option.name: option for option in OPTIONS}

# Generic mount(8) options that fstab lines carry and that mean nothing to octuefs.
IGNORED_MOUNT_OPTIONS = frozenset(
    {"rw", "defaults", "auto", "noauto", "user", "users", "nouser", "_netdev", "nofail", "exec", "noexec"}
    | {"suid", "nosuid", "dev", "nodev", "async", "sync", "atime", "noatime", "relatime", "nodiratime"}
)


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    mount = subparsers.add_parser("mount", help="mount gs://bucket[/prefix] at a directory")
    mount.add_argument("source", help="bucket, bucket/prefix or gs://bucket[/prefix]")
    mount.add_argument("mountpoint", type=Path)
    mount.add_argument("-o", dest="mount_options", action="append", default=[], help="options as key=value,flag,...")
    for option in OPTIONS:
        flag = "--" + option.name.replace("_", "-")
        if option.parse is None:
            mount.add_argument(flag, dest=option.name, action="store_true", default=None, help=option.help)
        else:
            mount.add_argument(flag, dest=option.name, default=None, help=option.help)
    mount.set_defaults(handler=run_mount)

    unmount = subparsers.add_parser("unmount", aliases=["umount"], help="unmount an octuefs mount")
    add_unmount_arguments(unmount)
    unmount.set_defaults(handler=run_unmount)


def parse_option_string(text: str) -> dict[str, Any]:
    """`key=value,flag,...` as in fstab and `-o`; dashes and underscores in keys are the same."""
    values: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, has_value, value = item.partition("=")
        key = key.replace("-", "_")
        if key == "ro":
            values["read_only"] = True
        elif key in IGNORED_MOUNT_OPTIONS or key.startswith(("x-", "comment")):
            continue
        elif key not in OPTIONS_BY_NAME:
            raise InvalidInputException(f"unknown mount option {key!r}.")
        else:
            values[key] = _convert(OPTIONS_BY_NAME[key], value if has_value else None)
    return values


def _convert(option: Option, value: str | None) -> Any:
    if option.parse is None:
        return value is None or value.lower() in ("1", "true", "yes")
    if value is None:
        raise InvalidInputException(f"mount option {option.name!r} needs a value ({option.name}=...).")
    try:
        return option.parse(value)
    except ValueError as error:
        raise InvalidInputException(f"mount option {option.name}={value!r}: {error}") from None


def build_config(arguments: argparse.Namespace) -> MountConfig:
    values: dict[str, Any] = {}
    for text in arguments.mount_options:
        values.update(parse_option_string(text))
    for option in OPTIONS:
        given = getattr(arguments, option.name)
        if given is not None:
            values[option.name] = _convert(option, None if option.parse is None else given)
    bucket, prefix = parse_source(arguments.source)
    return MountConfig(
        bucket=bucket,
        prefix=prefix,
        mountpoint=resolve_mountpoint(arguments.mountpoint),
        given_options=frozenset(values),
        **values,
    )


def check_before_mounting(config: MountConfig) -> None:
    if not os.path.exists("/dev/fuse"):
        raise MountError("/dev/fuse does not exist: FUSE is not available here (install fuse3, load the module).")
    if not config.mountpoint.is_dir():
        raise MountError(f"{config.mountpoint}: mountpoint does not exist or is not a directory.")
    if os.path.ismount(config.mountpoint):
        raise MountError(f"{config.mountpoint}: mountpoint is busy (something is already mounted there).")
    cache = config.resolved_cache_dir
    make_directories(cache)
    check_shared_directory(cache)
    prepare_runtime_directory()
    from octuefs.storage.gcs import configure, get_storage

    configure(endpoint=config.endpoint)
    try:
        # A user who asked to give up on failing requests sooner than the check's own 10 s gets that here too.
        exists = get_storage().bucket_exists(config.bucket, deadline=min(10.0, config.retry_deadline))
    except StorageError as error:
        raise MountError(f"cannot reach the storage server for gs://{config.bucket}: {error}") from None
    if not exists:
        raise MountError(f"gs://{config.bucket}: no such bucket.")


def run_mount(arguments: argparse.Namespace) -> int:
    # Before anything is created: staged bytes, records, the log and the cache are the user's alone.
    os.umask(PRIVATE_UMASK)
    config = build_config(arguments)
    check_before_mounting(config)
    from octuefs.fs.daemon import serve

    if config.foreground:
        serve(config, notify_ready=lambda: None)  # ends the process once unmounted
    return _daemonize(config, serve)


def _daemonize(config: MountConfig, serve: Callable[[MountConfig, Callable[[], None]], None]) -> int:
    read_end, write_end = os.pipe()
    child = os.fork()
    if child:
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            report = pipe.read().strip()
        if report.startswith("ready"):
            print(f"octuefs: mounted {config.source} at {config.mountpoint} (daemon pid {report.split()[1]})")
            return 0
        os.waitpid(child, 0)
        reason = report.removeprefix("error ") or f"the daemon exited early; see {config.resolved_log_file}"
        print(f"octuefs: mounting {config.source} at {config.mountpoint} failed: {reason}", file=sys.stderr)
        return 1
    os.close(read_end)
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    for stream in (0, 1, 2):
        os.dup2(null, stream)

    def notify_ready() -> None:
        os.write(write_end, f"ready {os.getpid()}\n".encode())
        os.close(write_end)

    code = 0
    try:
        serve(config, notify_ready)
    except BaseException as error:
        code = 1
        with contextlib.suppress(OSError):
            os.write(write_end, f"error {error}\n".encode())
    os._exit(code)
