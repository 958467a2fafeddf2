"""The mount's core: inodes, names and file content, driven by the FUSE adapter or by tests without FUSE.

Who owns what:
- `InodeTable` (inodes.py): every inode the kernel knows of, and which are being written. Changed
  only on the trio loop, each change one step with no await inside: no lock.
- `Inode`: one file's or directory's state: its view of the object (Datafile, generation, when it
  was seen), its `WriteSession` (staged bytes, `WriteStatus`, holders, pending attribute changes)
  and `Inode.lock`, a trio.Lock.
- `DirectoryCache` (octuefs/fs/dirs.py): listings, each trusted for the metadata TTL, then kept
  (bounded) as the last known, which `StaleKnowledge` (stale.py) lets answer while the server is
  unavailable, as it does a file's last known view.
- `Files` (files.py): content: fresh views, write sessions, uploads, truncates, metadata changes.
- `Namespace` (namespace.py): lookups, listings, create, mkdir, symlink, mknod, rmdir, unlink, rename.
- `Links` (links.py): symbolic links' targets, kept by generation.
- `Directories` (directories.py): directories' mode, owner and times, on their placeholder objects.
- The FUSE adapter (octuefs/fs/operations.py) owns the open handles (`ReadHandle`, `WriteHandle`)
  and only translates: pyfuse3 types in and out, errors to errnos (octuefs/fs/errno.py).

LOCK ORDERING: the only locks of the core are the per-inode `Inode.lock`s, taken on the loop.
- GUARDED_BY(Inode.lock): `Inode.write` (attaching, dropping, and everything in the session) and every
  change sent for the object with the adoption of its answer (upload, metadata PATCH, copy and
  delete of a rename or unlink).
- At most one inode lock is held at a time: a file rename holds the source's, then, after releasing
  it, the replaced target's; a directory rename takes the lock of each file under it in turn.
  Inode locks are never held while waiting for another inode, so they cannot deadlock. The lander
  (landing.py) sends one file at a time, each under its own inode's lock.
- No directory or table lock exists: the tables (InodeTable, DirectoryCache's listings) are changed
  on the loop between awaits. Locks below the core, each innermost and never held across an await:
  a `Feed`'s threading lock (its parts are sent by a feeder thread), the chunk cache's lock.

Threads: the trio loop runs every handler and changes every table. Worker threads (`Workers`, a
limiter each for storage requests, uploads and staged-file work) do disk and network I/O and return
results; a worker changes only the session it was handed by a caller holding that inode's lock.
INVARIANT: no disk or network I/O runs on the loop thread.
"""
