"""Directories from the `/` delimiter: what a listing shows, what it hides, and how long it is trusted.

A directory is a common prefix (an implicit directory) or a `dir/` placeholder object. Names
that cannot be a local file name (`.`, `..`, empty segments from `a//b`, names with NUL, CR or
LF, or over 255 bytes) are hidden with a log line; where an object and a prefix share a name, the
object is shown and the prefix hidden, with a log line, so lookups and listings always agree.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass

from octuefs.errors import InvalidInputException, NameTooLong
from octuefs.storage.gcs import TEMPORARY_PREFIX, ObjectStat
from octuefs.storage.interface import Storage

logger = logging.getLogger(__name__)

NAME_MAX = 255
# Lookups in a directory with no fresh listing: after this many, one listing (a request per 1000
# entries) answers the rest instead of a GET each, as when a program stats a manifest of paths or
# `find` walks a cold mount.
LIST_AFTER_PROBES = 4
# Entries such a listing may hold: a bigger directory keeps being probed name by name, so that a
# lookup never waits for a listing of millions of objects.
LOOKUP_LISTING_LIMIT = 20_000
# Entries of all the listings kept, fresh or expired (an expired one answers while the server is
# unavailable, see `octuefs.core.stale`): past this, the least recently used listings are dropped.
LISTED_ENTRIES_KEPT = 100_000


@dataclass(frozen=True)
class DirEntry:
    """One name in a directory; `seen_at` is when the request that found it was sent (monotonic), so
    an entry from an older listing never replaces fresher knowledge of the same object. A directory's
    `stat` is its placeholder's (None: a bare prefix, or, with `seen_at` 0, not known)."""

    name: str
    is_dir: bool
    stat: ObjectStat | None = None
    seen_at: float = 0.0


@dataclass(frozen=True)
class Listing:
    entries: dict[str, DirEntry]
    fetched_at: float

    def is_fresh(self, ttl: float) -> bool:
        return time.monotonic() - self.fetched_at < ttl


def _not_a_file_name(name: str) -> bool:
    return name in ("", ".", "..") or any(character in name for character in "\0\r\n")


def _too_long(name: str) -> bool:
    return len(name.encode("utf-8", "surrogateescape")) > NAME_MAX


def representable(name: str, full_name: str) -> bool:
    if full_name.startswith(TEMPORARY_PREFIX):
        return False  # bytes waiting to be joined onto an object (see GCSStorage.append), not a file
    if _not_a_file_name(name):
        logger.info("hiding %r: its name cannot be a local file name", full_name)
        return False
    if _too_long(name):
        logger.info("hiding %r: its name is longer than %d bytes", full_name, NAME_MAX)
        return False
    return True


class DirectoryCache:
    """Listings of mounted directories, each trusted for `ttl` seconds, then kept (within a bound) as
    the last known state of the directory."""

    def __init__(self, storage: Storage, bucket: str, prefix: str, ttl: float) -> None:
        self.storage = storage
        self.bucket = bucket
        self.root_prefix = f"{prefix}/" if prefix else ""
        self.ttl = ttl
        # Least recently used first; `_entries` counts the entries of them all.
        self._listings: OrderedDict[str, Listing] = OrderedDict()
        self._entries = 0
        # Bumped by every local change to a directory: a listing that was in flight meanwhile is
        # older than that change and must not be cached over it.
        self._versions: dict[str, int] = {}
        self._probes: Counter[str] = Counter()
        self._probe_only: set[str] = set()  # too big to list for lookups, or the listing was refused

    def object_name(self, path: str) -> str:
        return self.root_prefix + path

    def dir_prefix(self, path: str) -> str:
        return self.root_prefix + (f"{path}/" if path else "")

    def require_representable(self, path: str) -> None:
        """A name this mount is asked to create must be one its listings show, or the new file would vanish
        at the next listing (Linux passes FUSE names up to 1024 bytes, and CR and LF are legal to it, though
        GCS refuses them in object names)."""
        self.require_short(path)
        if _not_a_file_name(path.rsplit("/", 1)[-1]):
            location = f"gs://{self.bucket}/{self.object_name(path)}"
            raise InvalidInputException(f"{location!r}: a name with CR or LF would be hidden from listings.")

    def require_short(self, path: str) -> None:
        """No name of the mount is over NAME_MAX bytes: one asked for is refused as too long, not looked
        for (ENAMETOOLONG, as a local file system answers)."""
        if _too_long(path.rsplit("/", 1)[-1]):
            location = f"gs://{self.bucket}/{self.object_name(path)}"
            raise NameTooLong(f"{location!r}: a name over {NAME_MAX} bytes would be hidden from listings.")

    def fresh(self, path: str) -> Listing | None:
        listing = self.last(path)
        return listing if listing is not None and listing.is_fresh(self.ttl) else None

    def last(self, path: str) -> Listing | None:
        """The directory's last listing, however old: what to show when it cannot be listed again."""
        listing = self._listings.get(path)
        if listing is not None:
            self._listings.move_to_end(path)
        return listing

    def invalidate(self, path: str) -> None:
        self._versions[path] = self._versions.get(path, 0) + 1
        self._forget(path)

    def _forget(self, path: str) -> None:
        listing = self._listings.pop(path, None)
        if listing is not None:
            self._entries -= len(listing.entries)

    def _cache(self, path: str, listing: Listing) -> None:
        """Keep `listing`, dropping the least recently used others while all hold too many entries."""
        self._forget(path)
        self._listings[path] = listing
        self._entries += len(listing.entries)
        while self._entries > LISTED_ENTRIES_KEPT and len(self._listings) > 1:
            self._forget(next(iter(self._listings)))

    def record(self, path: str, entry: DirEntry | None) -> None:
        """Bring the parent's cached listing up to date with a change this mount made (None: the name
        is gone), so that the next lookup in it costs no request; without a listing there is nothing to do."""
        parent, _, name = path.rpartition("/")
        self._versions[parent] = self._versions.get(parent, 0) + 1
        listing = self._listings.get(parent)
        if listing is None:
            return
        self._entries -= len(listing.entries)
        if entry is None:
            listing.entries.pop(name, None)
        else:
            listing.entries[name] = entry
        self._entries += len(listing.entries)

    def record_empty(self, path: str) -> None:
        """A directory this mount just made holds nothing: later lookups in it need no request."""
        self._cache(path, Listing({}, time.monotonic()))

    def cached_paths(self) -> list[str]:
        return list(self._listings)

    def worth_listing(self, path: str) -> bool:
        """Count a lookup in `path` that found no fresh listing of it; True when listing it is due."""
        if path in self._probe_only:
            return False
        self._probes[path] += 1
        if self._probes[path] < LIST_AFTER_PROBES:
            return False
        self._probes.pop(path, None)
        return True

    def start_listing(self, path: str) -> int:
        """Before a listing of `path` is sent (on the loop): its version, for `keep` to compare."""
        self._probes.pop(path, None)
        return self._versions.get(path, 0)

    def read(self, path: str, limit: int | None) -> Listing | None:
        """List one directory (one request per 1000 entries): the listing, not cached, or None when it
        holds `limit` entries or more. Blocking and changing nothing here: run it in a worker thread."""
        prefix = self.dir_prefix(path)
        started = time.monotonic()
        # With the placeholders of its subdirectories (their attributes) at no extra request.
        result = self.storage.list(self.bucket, prefix, delimiter="/", limit=limit, trailing_delimiter=True)
        if limit is not None and len(result.objects) + len(result.prefixes) >= limit:
            return None
        entries: dict[str, DirEntry] = {}
        placeholders: dict[str, ObjectStat] = {}
        for stat in result.objects:
            name = stat.name[len(prefix) :]
            if name.endswith("/"):
                placeholders[name[:-1]] = stat
            elif name and representable(name, stat.name):
                entries[name] = DirEntry(name, False, stat, started)
        for sub_prefix in result.prefixes:
            name = sub_prefix[len(prefix) : -1]
            if not representable(name, sub_prefix):
                continue
            if name in entries:
                logger.warning("gs://%s/%s is both an object and a prefix; showing the object", self.bucket, sub_prefix)
                continue
            entries[name] = DirEntry(name, True, placeholders.get(name), started)
        return Listing(entries, time.monotonic())

    def keep(self, path: str, listing: Listing, version: int) -> None:
        """Cache a listing (on the loop), unless a local change to the directory came after it was sent."""
        if self._versions.get(path, 0) == version:
            self._cache(path, listing)

    def probe_only(self, path: str) -> None:
        """The directory is too big to list for lookups, or its listing was refused: probe names in it."""
        self._probe_only.add(path)

    def probe(self, path: str) -> DirEntry | None:
        """Find one name without listing its whole directory: the object first, then the prefix (blocking,
        changing nothing here: run it in a worker thread).

        A name that listings hide is not found here either, or it would be reachable (by typing its
        name before its directory was listed) and then vanish once the directory is listed.
        """
        name = path.rsplit("/", 1)[-1]
        if not representable(name, self.object_name(path)):
            return None
        started = time.monotonic()
        stat = self.storage.stat(self.bucket, self.object_name(path))
        if stat is not None:
            return DirEntry(name, False, stat, started)
        prefix = self.dir_prefix(path)
        result = self.storage.list(self.bucket, prefix, delimiter="/", limit=1)
        if result.objects or result.prefixes:
            # A placeholder is the first name under its prefix, so this one request finds it too.
            placeholder = next((stat for stat in result.objects if stat.name == prefix), None)
            return DirEntry(name, True, placeholder, started)
        return None
