"""The Octue SDK's exception names (`octue.exceptions`) for the errors octuefs raises.

Code that catches `octue.exceptions.InvalidTagException` and the like keeps working after
changing the import to `octuefs.exceptions`. The classes live in `octuefs.errors`; the names here
are the same classes, so either spelling catches them.
"""

from octuefs.errors import (
    BrokenSequenceException,
    ChecksumMismatch,
    CloudLocationNotSpecified,
    CloudObjectNotFound,
    FileNotFoundException,
    InvalidInputException,
    InvalidLabelException,
    InvalidTagException,
    InvalidTimestampException,
    LocalFileNotFound,
    MalformedMetadataError,
    MalformedMetadataWarning,
    MetadataTooLargeError,
    OctuefsError,
    PreconditionConflict,
    ReadOnlyResource,
    SigningUnavailable,
    StorageError,
    UnexpectedNumberOfResultsException,
)

# Octue's base class of every error it raises on purpose.
OctueSDKException = OctuefsError

__all__ = [
    "BrokenSequenceException",
    "ChecksumMismatch",
    "CloudLocationNotSpecified",
    "CloudObjectNotFound",
    "FileNotFoundException",
    "InvalidInputException",
    "InvalidLabelException",
    "InvalidTagException",
    "InvalidTimestampException",
    "LocalFileNotFound",
    "MalformedMetadataError",
    "MalformedMetadataWarning",
    "MetadataTooLargeError",
    "OctueSDKException",
    "PreconditionConflict",
    "ReadOnlyResource",
    "SigningUnavailable",
    "StorageError",
    "UnexpectedNumberOfResultsException",
]
