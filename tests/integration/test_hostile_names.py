"""The library on objects whose names no local file can have, and beside a `.octue` that is not JSON.

Unlike the mount, the library has no tree to fit names into: a Dataset lists every object by its
exact cloud name, and only a download needs a local name, which must stay inside the directory it
was made for whatever the object is called.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import pytest

from octuefs import Datafile, Dataset

PREFIX = "hostile"
CONTENT = b"hostile\n"
# Names that are hidden by a mount, each a valid GCS object name (except CR/LF, refused by GCS itself).
DIRECT = ["..", ".", "line\nbreak.txt", "cr\rname.txt", "x" * 300, "é" * 128 + ".txt", "fine.txt"]
NESTED = ["a/../b.txt", "./x.txt", "a//b.txt", "d" * 300 + "/inner.txt", "/leading.txt", "../../../escape.txt"]


@pytest.fixture
def hostile(bucket, proxy) -> str:
    for name in (*DIRECT, *NESTED):
        bucket.blob(f"{PREFIX}/{name}").upload_from_string(CONTENT)
    bucket.blob(f"{PREFIX}/.octue").upload_from_string(b"{not json")
    bucket.blob(f"{PREFIX}/a/.octue").upload_from_string(b"[1, 2")
    proxy.reset()
    return f"gs://{bucket.name}/{PREFIX}"


def in_bucket(dataset: Dataset) -> list[str]:
    return sorted(datafile.path_in_bucket.removeprefix(f"{PREFIX}/") for datafile in dataset)


def test_a_dataset_lists_every_object_by_its_exact_name(hostile, bucket, proxy):
    with pytest.warns(UserWarning, match=f"gs://{bucket.name}/{PREFIX}/.octue: dataset metadata is not valid"):
        flat = Dataset(hostile, recursive=False)
    assert in_bucket(flat) == sorted(DIRECT)
    assert proxy.kinds() == ["list", "media"]  # the broken .octue was read once, and nothing else

    with pytest.warns(UserWarning, match="dataset metadata is not valid"):
        recursive = Dataset(hostile, recursive=True)
    assert in_bucket(recursive) == sorted([*DIRECT, *NESTED])
    assert {datafile.cloud_path for datafile in recursive} == {
        f"gs://{bucket.name}/{PREFIX}/{name}" for name in (*DIRECT, *NESTED)
    }


def test_every_download_stays_in_its_own_directory(hostile, tmp_path, monkeypatch):
    """`tempfile` is pointed at an empty directory, so anything a name put outside a download's own
    directory would show up in it."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = Dataset(hostile, recursive=True)

    local_paths = []
    for datafile in dataset:
        local = Path(datafile.download())
        assert local.read_bytes() == CONTENT, datafile.cloud_path
        assert local.parent.parent == scratch and local.parent.name.startswith("octuefs-"), local
        assert local.resolve().parent == local.parent.resolve(), local
        local_paths.append(local)

    assert sorted(path.parent for path in scratch.rglob("*") if path.is_file()) == sorted(
        path.parent for path in local_paths
    )
    assert not any(path.name == "escape.txt" for path in tmp_path.rglob("*") if path.parent.parent != scratch)


def test_a_name_with_nul_downloads_under_a_stand_in_name(bucket, proxy):
    """GCS allows NUL in an object name; Linux allows it in no file name."""
    name = f"{PREFIX}/nul\0name.txt"
    bucket.blob(name).upload_from_string(CONTENT)
    assert [datafile.path_in_bucket for datafile in Dataset(f"gs://{bucket.name}/{PREFIX}", recursive=False)] == [name]

    local = Path(Datafile(f"gs://{bucket.name}/{name}").download())

    assert local.read_bytes() == CONTENT
    assert "\0" not in local.name


def test_a_dataset_download_skips_names_that_are_no_file_inside_the_directory(hostile, tmp_path):
    """Octue joins `../../../escape.txt` onto the download directory and writes outside it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*dataset metadata is not valid")
        dataset = Dataset(hostile)
    target = tmp_path / "deep" / "download"

    with pytest.warns(UserWarning, match="cannot be a local file inside") as record:
        dataset.download(target)

    downloadable = ["line\nbreak.txt", "cr\rname.txt", "fine.txt"]
    assert sorted(path.relative_to(target).as_posix() for path in tmp_path.rglob("*") if path.is_file()) == sorted(
        downloadable
    )
    assert all((target / name).read_bytes() == CONTENT for name in downloadable)
    assert len(record) == len(DIRECT) + len(NESTED) - len(downloadable)
