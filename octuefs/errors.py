"""Every error octuefs raises on purpose.

Each class says *what kind* of failure happened so callers (the CLI, the FUSE layer's single errno
mapping) can act on it without parsing messages; each message names the file and the reason.
The names Octue users already catch (`InvalidLabelException`, `InvalidTagException`,
`InvalidInputException`, `CloudLocationNotSpecified`) are kept.
"""

from __future__ import annotations


class OctuefsError(Exception):
    """Base of every octuefs error."""


class InvalidInputException(OctuefsError, ValueError):
    """A value given by the user (path, id, timestamp, mode, option) is not acceptable."""


class InvalidLabelException(InvalidInputException):
    """A label is not a lowercase word of letters, digits and inner hyphens."""


class InvalidTagException(InvalidInputException):
    """A tag key is malformed or a tag value cannot be encoded as Octue JSON."""


class InvalidTimestampException(InvalidInputException, TypeError):
    """A timestamp is neither a datetime, a number of epoch seconds, nor an ISO 8601 string.

    Also a TypeError, because that is what Octue raises for a timestamp of the wrong kind.
    """


class MalformedMetadataError(InvalidInputException):
    """Metadata stored on an object or in a `.octue` file cannot be decoded."""


class MetadataTooDeepError(MalformedMetadataError):
    """JSON nested deeper than `values.MAX_JSON_DEPTH`: parsing or encoding it could exhaust the stack."""


class MetadataTooLargeError(InvalidInputException):
    """The custom metadata would exceed GCS's 8 KiB limit, so it is refused before sending."""


class NameTooLong(InvalidInputException):
    """A name asked of a mount has a segment over 255 bytes, which no listing of it could show."""


class CloudLocationNotSpecified(OctuefsError):
    """An upload or download was asked of a datafile with no cloud location."""


class FileNotFoundException(OctuefsError, FileNotFoundError):
    """A file or object that was asked for does not exist (Octue's name for it)."""


class CloudObjectNotFound(FileNotFoundException):
    """The cloud object (or its bucket) does not exist."""


class PreconditionConflict(OctuefsError):
    """Another writer changed the object between our read and our write; ours was not applied."""


class ReadOnlyResource(OctuefsError):
    """A change was asked of a datafile read through a signed URL, which can only be read."""


class SigningUnavailable(OctuefsError):
    """No credentials that can sign a URL (a service-account key, or a token for the IAM signing API)."""


class ChecksumMismatch(OctuefsError):
    """Downloaded bytes do not match the object's crc32c; nothing was kept."""


class StorageError(OctuefsError, OSError):
    """The storage server failed a request even after retries (or could not be reached)."""


class ServerUnavailable(StorageError):
    """The server could not be reached, or answered only with transient failures (5xx, 429, dropped
    connections, timeouts) until the retry deadline: what it said before may still be served, and what
    waits to be sent may be sent once it is back (unlike a refusal, which retrying would not change)."""


class ServerLost(ServerUnavailable):
    """Not sent: the server was found unreachable and no probe has reached it since (the circuit
    breaker of octuefs/storage/health.py), so the request fails at once instead of waiting out a
    retry deadline of its own."""


class StagingDiskError(OctuefsError, OSError):
    """The local disk holding files being written refused to hold more (full, quota, file too large):
    programs get its own errno, as they would from a local file."""


class LocalFileNotFound(FileNotFoundException):
    """A local datafile's file does not exist where it was asked for."""


class NoSuchAttribute(OctuefsError, LookupError):
    """An extended attribute that the file does not have (ENODATA to programs)."""


class ReadOnlyAttribute(OctuefsError, PermissionError):
    """An extended attribute derived from the object (id, hash, cloud path) cannot be set or removed."""


class UnsupportedAttribute(OctuefsError):
    """An extended attribute name octuefs does not store (ENOTSUP to programs)."""


class ReadOnlyFilesystem(OctuefsError):
    """A change to content was asked of a mount that does not write content (EROFS to programs)."""


class Refused(OctuefsError):
    """A request of the mount that POSIX answers with a refusal, not a failure (not counted as an error)."""


class NoSuchEntry(Refused):
    """The name is not in the directory (ENOENT)."""


class AlreadyExists(Refused):
    """The name is taken (EEXIST)."""


class NotADirectory(Refused):
    """A directory operation named a file (ENOTDIR)."""


class IsADirectory(Refused):
    """A file operation named a directory (EISDIR)."""


class DirectoryNotEmpty(Refused):
    """rmdir, or a rename over a directory, of a directory that holds something (ENOTEMPTY)."""


class StaleObject(Refused):
    """The object an open file reads was replaced or deleted by another writer (ESTALE)."""


class MountError(OctuefsError):
    """A problem found before mounting: no FUSE, bad mountpoint, unreachable server, missing bucket."""


class UnsafePath(OctuefsError):
    """A directory or file someone else prepared or can change (owned by another user, writable by
    others, a symlink where none belongs) that the mount would otherwise trust."""


class UnexpectedNumberOfResultsException(OctuefsError, LookupError):
    """A lookup that must find exactly one item (`one()`, `get_file_by_label`) found none or several."""


class BrokenSequenceException(OctuefsError):
    """Items ordered by an attribute do not start at, or step by, the value `order_by` was told to check."""


class MalformedMetadataWarning(UserWarning):
    """One field of stored metadata could not be read (another writer stored it badly); the rest was read."""
