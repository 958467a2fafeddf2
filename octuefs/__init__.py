"""octuefs: Google Cloud Storage buckets as files, carrying each object's Octue metadata.

`from octuefs import Datafile, Dataset` gives the Octue SDK's Datafile API on the same engine
the FUSE mount uses.
"""

from importlib.metadata import PackageNotFoundError, version

from octuefs.datafile import Datafile
from octuefs.dataset import Dataset
from octuefs.errors import (
    ChecksumMismatch,
    CloudLocationNotSpecified,
    CloudObjectNotFound,
    InvalidInputException,
    InvalidLabelException,
    InvalidTagException,
    LocalFileNotFound,
    MalformedMetadataError,
    MetadataTooLargeError,
    OctuefsError,
    PreconditionConflict,
    StorageError,
)
from octuefs.metadata.labels import LabelSet
from octuefs.metadata.tags import TagDict
from octuefs.storage.gcs import configure

try:
    __version__ = version("octuefs")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = [
    "ChecksumMismatch",
    "CloudLocationNotSpecified",
    "CloudObjectNotFound",
    "Datafile",
    "Dataset",
    "InvalidInputException",
    "InvalidLabelException",
    "InvalidTagException",
    "LabelSet",
    "LocalFileNotFound",
    "MalformedMetadataError",
    "MetadataTooLargeError",
    "OctuefsError",
    "PreconditionConflict",
    "StorageError",
    "TagDict",
    "__version__",
    "configure",
]
