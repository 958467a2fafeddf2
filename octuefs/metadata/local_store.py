"""The `.octue` file beside local datafiles: read, merged on write, replaced atomically.

Octue rewrites the whole file from one datafile's view, so two datafiles in a folder clobber each
other and a failed encode truncates it. Here every write re-reads the file under an exclusive
lock on its directory, changes one entry, and renames a fully written temp file into place.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from octuefs.errors import MalformedMetadataError
from octuefs.metadata.values import load_json_of_type

METADATA_FILENAME = ".octue"


class LocalMetadataStore:
    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.path = self.directory / METADATA_FILENAME

    def read(self) -> dict[str, Any]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {}
        return load_json_of_type(text, dict, MalformedMetadataError, str(self.path))

    def datafile_entry(self, name: str) -> dict[str, Any] | None:
        entries = self.read().get("datafiles") or {}
        return entries.get(name) if isinstance(entries, dict) else None

    def write_datafile_entry(self, name: str, entry: dict[str, Any]) -> None:
        with self._locked() as document:
            datafiles = document.get("datafiles")
            if not isinstance(datafiles, dict):
                datafiles = document["datafiles"] = {}
            datafiles[name] = entry

    def write_dataset_entry(self, entry_onto: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        """Replace the dataset entry with `entry_onto(the entry now stored)`, under the lock, so the caller
        can merge another writer's change to it; returns the entry written."""
        with self._locked() as document:
            document["dataset"] = entry = entry_onto(document.get("dataset"))
        return entry

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """Yield the current document for changes; written back atomically unless the block raised."""
        self.directory.mkdir(parents=True, exist_ok=True)
        directory_fd = os.open(self.directory, os.O_RDONLY)
        try:
            fcntl.flock(directory_fd, fcntl.LOCK_EX)
            document = self.read()
            yield document
            self._replace(json.dumps(document, indent=4) + "\n")
        finally:
            os.close(directory_fd)

    def _replace(self, text: str) -> None:
        """Rename a complete temp file into place, with the mode the file had (or `open` would give it).

        Not `tempfile.mkstemp`: its files are 0600, which would hide `.octue` from everyone else
        who could read it before (Octue's own `open(path, "w")` keeps the mode or applies the umask).
        """
        temporary = self.directory / f"{METADATA_FILENAME}.{secrets.token_hex(8)}.tmp"
        handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(handle, "w") as file:
                with contextlib.suppress(FileNotFoundError):
                    os.fchmod(file.fileno(), stat.S_IMODE(os.stat(self.path).st_mode))
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
