"""Symbolic links' targets, as gcsfuse stores them (see octuefs/fs/posix.py), for the kernel to follow.

The daemon only hands a target to the kernel (readlink); it never resolves one itself. A target in
the object's content costs a read, and the kernel asks again each time it walks the link, so targets
are kept by generation, which names one content for good.
"""

from __future__ import annotations

import stat as stat_module
from collections import OrderedDict
from dataclasses import dataclass, field

from octuefs.core.files import Files
from octuefs.core.inodes import Inode
from octuefs.core.parts import CoreParts
from octuefs.errors import InvalidInputException, NameTooLong
from octuefs.fs import posix

# Linux's PATH_MAX, with the terminating NUL: no link this mount makes holds more, and an object
# claiming to be a longer link is refused rather than read whole.
PATH_MAX = 4096
TARGETS_KEPT = 4096


@dataclass
class Links(CoreParts):
    files: Files
    # (object name, generation) -> target, least recently used first.
    targets: OrderedDict[tuple[str, int], bytes] = field(default_factory=OrderedDict)

    async def target(self, inode: Inode) -> bytes:
        datafile = await self.files.fresh(inode)
        stat = datafile.cloud_stat
        assert stat is not None, "a fresh view of an object has its stat"
        custom = stat.metadata
        if posix.file_type(custom) != stat_module.S_IFLNK:
            raise InvalidInputException(f"{self.files.location(inode)}: not a symbolic link.")
        if not posix.link_target_in_content(custom):
            return custom[posix.SYMLINK_TARGET_KEY].encode("utf-8", "surrogateescape")
        if stat.size >= PATH_MAX:
            raise NameTooLong(f"{self.files.location(inode)}: a link target of {stat.size} bytes is over PATH_MAX.")
        key = (stat.name, stat.generation)
        target = self.targets.get(key)
        if target is None:
            target = await self.workers.blocking(self.storage.read_range, stat, 0, stat.size)
            if b"\0" in target:
                raise InvalidInputException(f"{self.files.location(inode)}: a link target holds a NUL byte.")
            self.targets[key] = target
            while len(self.targets) > TARGETS_KEPT:
                self.targets.popitem(last=False)
        self.targets.move_to_end(key)
        return target
