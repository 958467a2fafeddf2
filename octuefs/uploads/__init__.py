"""Uploads of files written through the mount: staging, the write session and how its bytes go up.

GCS objects cannot be changed in place, so a file being written lives in the staging area
(`staging.py`, with recovery after a crash), one `WriteSession` per inode (`session.py`).
`Uploader` (`uploader.py`) fills and changes the staged copy and chooses how it goes up
(`sending.py`), with the fallbacks of each:

- streamed parts (`feed.py`): a new or truncated file written front to back is sent while it is
  written; a rewrite of bytes already sent, a metadata change or a failed part falls back to whole;
- append by compose: an object of at least `JOIN_MIN_BYTES` opened without truncation is not copied
  in (its bytes stay a hole), and only the bytes after it are sent and joined on in the cloud; a
  refused join copies the hole in and falls back to whole;
- whole: one upload of the staged file.

Every upload carries the complete metadata, the content type and `ifGenerationMatch` of the generation
the bytes came from (0 for a new file), so another writer's newer object is never overwritten; a failed
upload leaves the staged bytes in place for the next flush or fsync, for the lander once no handle holds
the file (octuefs.core.landing), and for recovery at the next mount.

The methods block (disk and network): the core runs them in worker threads, holding the inode's lock,
so a worker changes only the session it was handed and no other thread touches that session meanwhile.
"""
