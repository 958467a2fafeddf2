"""Inodes: numbers that stay the same for a path for the life of the mount, with kernel lookup counts.

A path keeps its number even after the kernel forgets it (only the heavy state is dropped), so
tools that compare inode numbers across calls (`find`, `tar`, `du`) see a stable tree. An `Inode`
owns everything about one file: its view of the object, its write session and the lock that
serialises changes to them (see `octuefs.core` for the lock order).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import trio

from octuefs.datafile import Datafile
from octuefs.errors import CloudObjectNotFound
from octuefs.storage.gcs import ObjectStat
from octuefs.uploads.session import WriteSession

# The kernel's number for the mount's root (FUSE_ROOT_ID).
ROOT_INODE = 1


@dataclass
class Inode:
    """A file or directory of the mount. A file's Datafile is built only when something needs its
    metadata: listing a directory of thousands of files needs just their stats."""

    ino: int
    path: str
    is_dir: bool
    lookups: int = 0
    refreshed_at: float = field(default_factory=time.monotonic)
    last_opened_generation: int | None = None
    # Made by create() on this mount: the temp file of a write-and-rename (sed -i, rsync, editors).
    created_here: bool = False
    # The generation this mount's last upload or rename of the file made: handles opened before it read
    # it (a rename's copy holds the bytes they were reading, and the object they were reading is gone).
    generation_made_here: int | None = None
    # The mtime shown while this mount made that generation (the last write's time): shown for it from
    # then on, not the object's update time, which is a few ms later and would tell editors (vim) that
    # the file changed under them.
    mtime_made_here: int | None = None
    # The last change of the file's or directory's status made here (ctime, ns): kept here, as the
    # changes that make no new object and store no ctime key (rename, setxattr, unlink) need it.
    changed_here_ns: int | None = None
    # A directory's mtime from entries created, removed or renamed in it here (not stored: see
    # `octuefs.core.directories`); None once a utimens gives it one.
    entries_changed_ns: int | None = None
    # A directory whose placeholder (`stat`, None for a bare prefix) was looked for, as of `refreshed_at`.
    placeholder_seen: bool = False
    # The file lost its name (unlink, or a rename over it) while the kernel still held it: st_nlink 0.
    unlinked: bool = False
    # Taken on the loop around every change of the write session and every change sent for the object
    # (open for writing, write, truncate, upload, metadata PATCH, rename, unlink) and the adoption of its
    # answer: each answer replaces the Datafile's stat, so two in flight at once could leave it at the
    # older generation, and every later upload of the file would then fail its generation precondition.
    lock: trio.Lock = field(default_factory=trio.Lock, repr=False, compare=False)
    # GUARDED_BY(lock): the staged bytes being written here and their upload state; None when not written.
    write: WriteSession | None = field(default=None, repr=False, compare=False)
    _stat: ObjectStat | None = None
    _datafile: Datafile | None = None

    @property
    def datafile(self) -> Datafile | None:
        if self._datafile is None and self._stat is not None:
            self._datafile = Datafile.from_object_stat(self._stat)
        return self._datafile

    @property
    def stat(self) -> ObjectStat | None:
        return self._datafile.cloud_stat if self._datafile is not None else self._stat

    @property
    def known(self) -> bool:
        return self._datafile is not None or self._stat is not None

    def refresh(self, datafile: Datafile, seen_at: float | None = None) -> None:
        """Adopt `datafile` as the object's state as of `seen_at` (when its request was sent; default now)."""
        self._datafile, self._stat = datafile, None
        self.refreshed_at = time.monotonic() if seen_at is None else seen_at

    def refresh_stat(self, stat: ObjectStat, seen_at: float | None = None) -> None:
        """Adopt the object's `stat` as of `seen_at`; its Datafile is rebuilt when next needed."""
        self._datafile, self._stat = None, stat
        self.refreshed_at = time.monotonic() if seen_at is None else seen_at

    def outdate(self) -> None:
        """What is known of the object is no longer true: the next use asks the server again."""
        self.refreshed_at = float("-inf")

    def refresh_placeholder(self, stat: ObjectStat | None, seen_at: float | None = None) -> None:
        """Adopt a directory's placeholder as of `seen_at` (default now); None: it has none."""
        self._datafile, self._stat, self.placeholder_seen = None, stat, True
        self.refreshed_at = time.monotonic() if seen_at is None else seen_at

    def entries_changed(self, now_ns: int) -> None:
        """A directory's entry was created, removed or renamed here: its mtime and ctime are now."""
        self.entries_changed_ns = self.changed_here_ns = now_ns

    def is_fresh(self, ttl: float) -> bool:
        return time.monotonic() - self.refreshed_at < ttl


class InodeTable:
    """Every inode the kernel knows of, and the files being written. Changed only on the trio loop, each
    change one step with no await inside, so it needs no lock."""

    def __init__(self) -> None:
        root = Inode(ROOT_INODE, "", True, lookups=1)
        self._by_ino: dict[int, Inode] = {root.ino: root}
        self._numbers: dict[tuple[str, bool], int] = {("", True): root.ino}
        self._next = root.ino + 1
        # Inodes holding a write session: kept though the kernel forgets them (a failed upload's bytes
        # stay staged for the next flush), and walked by listings, which must show files not uploaded yet.
        self._writing: dict[int, Inode] = {}

    def __getitem__(self, ino: int) -> Inode:
        try:
            return self._by_ino[ino]
        except KeyError:
            raise CloudObjectNotFound(f"inode {ino} is not known (forgotten or never looked up).") from None

    def __len__(self) -> int:
        return len(self._by_ino)

    def entry(self, path: str, is_dir: bool) -> Inode:
        """The inode for a path, made if needed, without counting a kernel lookup."""
        number = self._numbers.get((path, is_dir))
        if number is None:
            number = self._numbers[(path, is_dir)] = self._next
            self._next += 1
        inode = self._by_ino.get(number)
        if inode is None:
            inode = self._by_ino[number] = Inode(number, path, is_dir)
        return inode

    def find_by_number(self, ino: int) -> Inode | None:
        return self._by_ino.get(ino)

    def find(self, path: str, is_dir: bool) -> Inode | None:
        number = self._numbers.get((path, is_dir))
        return self._by_ino.get(number) if number is not None else None

    def move(self, old_path: str, new_path: str, is_dir: bool) -> None:
        """After a rename: the inode (and, for a directory, everything under it) keeps its number."""
        moves = [(old_path, new_path, is_dir)]
        if is_dir:
            prefix = old_path + "/"
            moves += [
                (path, new_path + path[len(old_path) :], kind)
                for (path, kind) in list(self._numbers)
                if path.startswith(prefix)
            ]
        for source, destination, kind in moves:
            number = self._numbers.pop((source, kind), None)
            if number is None:
                continue
            self._numbers[(destination, kind)] = number
            inode = self._by_ino.get(number)
            if inode is not None:
                inode.path = destination

    def detach(self, inode: Inode) -> None:
        """After an unlink: the name is free for a new file, while open handles keep the old inode."""
        if self._numbers.get((inode.path, inode.is_dir)) == inode.ino:
            del self._numbers[(inode.path, inode.is_dir)]

    def start_writing(self, inode: Inode, session: WriteSession) -> None:
        """The caller holds `inode.lock`."""
        inode.write = session
        self._writing[inode.ino] = inode

    def stop_writing(self, inode: Inode) -> None:
        """The caller holds `inode.lock` and removes the session's staged files itself."""
        inode.write = None
        self._writing.pop(inode.ino, None)
        if inode.lookups <= 0 and self._by_ino.get(inode.ino) is inode and inode.ino != ROOT_INODE:
            del self._by_ino[inode.ino]

    def writing(self) -> list[Inode]:
        return list(self._writing.values())

    def forget(self, ino: int, count: int) -> None:
        inode = self._by_ino.get(ino)
        if inode is None or ino == ROOT_INODE:
            return
        inode.lookups -= count
        if inode.lookups <= 0 and inode.write is None:
            del self._by_ino[ino]
