"""What the benchmark measures: the sizes of each workload and the target of each row.

The targets come from the issues that set them (issue 7: cold read, write, HDF5 bytes, ahead of
rclone everywhere; issues 4 and 5: warm read, first byte, listing, small files; issue 16 raised the
bounds of cold read, listing and large write). Rows that no
issue gave a bound get the bound that makes the mount worth using over the client: no slower
per random read or per stat than the client by more than listing's 1.5, no more requests for
metadata than the client needs, and a slice faster than downloading the whole file.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.harness import GiB, MiB, Target


@dataclass(frozen=True)
class Sizes:
    large: int  # the object read sequentially and randomly, and the file written
    random_reads: int
    first_byte: int
    hdf5_shape: tuple[int, int]
    hdf5_chunks: tuple[int, int]
    hdf5_slice: tuple[slice, slice]
    listing: int
    small_files: int
    small_size: int
    repeats: int


FULL = Sizes(
    large=256 * MiB,
    random_reads=500,
    first_byte=1 * GiB,
    hdf5_shape=(8192, 4096),
    hdf5_chunks=(256, 256),
    hdf5_slice=(slice(1000, 1100), slice(2000, 2100)),
    listing=10_000,
    small_files=1000,
    small_size=1024,
    repeats=3,
)
QUICK = Sizes(
    large=16 * MiB,
    random_reads=50,
    first_byte=64 * MiB,
    hdf5_shape=(1024, 1024),
    hdf5_chunks=(128, 128),
    hdf5_slice=(slice(500, 600), slice(500, 600)),
    listing=500,
    small_files=50,
    small_size=1024,
    repeats=1,
)

TARGETS = {
    1: Target(1.3, higher_is_better=True),  # cold sequential read rate / direct download
    2: Target(0.5, higher_is_better=True),  # warm re-read rate / local file read
    3: Target(1.5, higher_is_better=False),  # time per random 4 KiB read / ranged GET
    4: Target(0.02, higher_is_better=False, percent=True),  # first 4 KiB / full download
    5: Target(0.05, higher_is_better=False, percent=True),  # bytes fetched for one slice / file size
    6: Target(0.5, higher_is_better=False),  # slice time / download + slice
    7: Target(1.2, higher_is_better=False),  # ls -l / list_blobs
    8: Target(1.5, higher_is_better=False),  # stat by name / list_blobs
    9: Target(1.0, higher_is_better=False),  # requests for getfattr after a listing / client's
    10: Target(1.0, higher_is_better=False),  # requests for one setfattr / client's
    11: Target(1.0, higher_is_better=False),  # write time / upload_from_filename
    12: Target(1.5, higher_is_better=False),  # small-file creates / one upload each
}
