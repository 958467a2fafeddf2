"""The kernel's readahead for a mount: the `read_ahead_kb` of its backing device (bdi).

A FUSE mount starts with the kernel's default of 128 KiB, and the kernel never sends a read larger
than its readahead window: a sequential reader then costs the daemon one Python answer per 128 KiB.
libfuse already lets requests be as large as `max_pages` allows (1 MiB, FUSE_MAX_MAX_PAGES pages),
but the init reply cannot raise the readahead above what the kernel proposed; only the bdi's sysfs
file can, and only root may write it. Unprivileged mounts keep the kernel's default.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

MOUNT_TABLE = Path("/proc/self/mountinfo")
BDI_DIRECTORY = Path("/sys/class/bdi")


def device_of(mountpoint: Path) -> str | None:
    """The mount's "major:minor" from the mount table: a stat of the mountpoint would be a request to
    this very daemon, which does not serve yet when this is called."""
    target = os.path.abspath(mountpoint)
    devices = [
        fields[2]
        for fields in (entry.split() for entry in MOUNT_TABLE.read_text().splitlines())
        if len(fields) > 4 and fields[4].encode().decode("unicode_escape") == target
    ]
    return devices[-1] if devices else None  # the last: a mount stacked on others at the same path


def raise_kernel_readahead(mountpoint: Path, size: int) -> None:
    """Set the mount's readahead to `size` bytes where allowed; a failure only costs speed, so it is logged."""
    device = device_of(mountpoint)
    if device is None or size <= 0:
        return
    setting = BDI_DIRECTORY / device / "read_ahead_kb"
    try:
        setting.write_text(str(size // 1024))
    except OSError as error:
        logger.info("kernel readahead of %s left at its default (%s: %s)", mountpoint, setting, error.strerror)
        return
    logger.debug("kernel readahead of %s set to %d KiB", mountpoint, size // 1024)
