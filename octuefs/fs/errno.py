"""The one place where octuefs errors become errnos, and the guard every FUSE handler runs under.

A handler that raises anything unexpected is logged with the path it was working on and answers
EIO: one bad request never takes the daemon (and with it every program using the mount) down.
"""

from __future__ import annotations

import errno
import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pyfuse3

from octuefs.errors import (
    AlreadyExists,
    ChecksumMismatch,
    CloudObjectNotFound,
    DirectoryNotEmpty,
    InvalidInputException,
    IsADirectory,
    LocalFileNotFound,
    MetadataTooLargeError,
    NameTooLong,
    NoSuchAttribute,
    NoSuchEntry,
    NotADirectory,
    PreconditionConflict,
    ReadOnlyAttribute,
    ReadOnlyFilesystem,
    Refused,
    StagingDiskError,
    StaleObject,
    StorageError,
    UnsupportedAttribute,
)

logger = logging.getLogger(__name__)

# Most specific first: MetadataTooLargeError and NameTooLong are also InvalidInputExceptions.
ERRNO_BY_ERROR: tuple[tuple[type[BaseException], int], ...] = (
    (NoSuchEntry, errno.ENOENT),
    (AlreadyExists, errno.EEXIST),
    (NotADirectory, errno.ENOTDIR),
    (IsADirectory, errno.EISDIR),
    (DirectoryNotEmpty, errno.ENOTEMPTY),
    (StaleObject, errno.ESTALE),
    (MetadataTooLargeError, errno.E2BIG),
    (NameTooLong, errno.ENAMETOOLONG),
    (InvalidInputException, errno.EINVAL),
    (NoSuchAttribute, pyfuse3.ENOATTR),
    (ReadOnlyAttribute, errno.EPERM),
    (UnsupportedAttribute, errno.ENOTSUP),
    (ReadOnlyFilesystem, errno.EROFS),
    (CloudObjectNotFound, errno.ENOENT),
    (LocalFileNotFound, errno.ENOENT),
    (PreconditionConflict, errno.EIO),
    (ChecksumMismatch, errno.EIO),
    (StorageError, errno.EIO),
)


def errno_for(error: BaseException) -> int | None:
    if isinstance(error, StagingDiskError) and error.errno:
        return error.errno  # the local disk's own answer: ENOSPC, EDQUOT, EFBIG
    for error_type, code in ERRNO_BY_ERROR:
        if isinstance(error, error_type):
            return code
    return None


Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])


def fuse_errors(method: Handler) -> Handler:
    """Run a handler so that every exception reaches the kernel as an errno, logged with its path."""

    # What the first argument is (a handle or an inode number), so that log lines look it up as that.
    first = next(iter(list(inspect.signature(method).parameters)[1:]), "")

    @functools.wraps(method)
    async def guarded(self: Any, *args: Any) -> Any:
        started = time.monotonic()
        try:
            result = await method(self, *args)
        except (pyfuse3.FUSEError, Refused) as error:
            # An answer POSIX gives (ENOENT, EEXIST, ENOTEMPTY, ...), not a failure: not counted as one.
            code = error.errno if isinstance(error, pyfuse3.FUSEError) else (errno_for(error) or errno.EIO)
            _log_operation(self, method.__name__, first, args, started, errno.errorcode.get(code, str(code)))
            raise pyfuse3.FUSEError(code) from None
        except Exception as error:
            where = self.describe_argument(first, args[0]) if args else "-"
            code = errno_for(error)
            self.errors[errno.errorcode.get(code or errno.EIO, "EIO")] += 1
            if code is None:
                logger.exception("%s %s: unexpected error, answering EIO", method.__name__, where)
                code = errno.EIO
            else:
                logger.log(
                    logging.WARNING if code == errno.EIO else logging.DEBUG,
                    "%s %s: %s",
                    method.__name__,
                    where,
                    error,
                )
            _log_operation(self, method.__name__, first, args, started, errno.errorcode.get(code, str(code)))
            raise pyfuse3.FUSEError(code) from None
        _log_operation(self, method.__name__, first, args, started, "ok")
        return result

    return guarded  # type: ignore[return-value]


def _log_operation(operations: Any, name: str, first: str, args: tuple[Any, ...], started: float, outcome: str) -> None:
    """With --debug, one line per FUSE operation: what, on which object, the outcome and how long."""
    if logger.isEnabledFor(logging.DEBUG):
        where = operations.describe_argument(first, args[0]) if args else "-"
        elapsed = (time.monotonic() - started) * 1000
        fields = {"op": name, "object": where, "outcome": outcome, "ms": round(elapsed, 3)}
        logger.debug("fuse %s %s: %s, %.2f ms", name, where, outcome, elapsed, extra=fields)
