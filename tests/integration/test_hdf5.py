"""HDF5 datafiles: `open()` yields an `h5py.File`; what changes inside the block is saved on exit.

A cloud HDF5 file is edited in a local staging copy and uploaded (content and Octue metadata in
one request) when the block exits; the golden case checks the metadata bytes Octue writes for
an HDF5 file.
"""

from __future__ import annotations

import gc
import json

import h5py
import numpy as np
import pytest

from octuefs import Datafile
from tests.support.golden import GOLDEN_OBJECTS

GOLDEN = GOLDEN_OBJECTS[2]
SPEED = [3.5, 4.25, 5.0]


@pytest.fixture(autouse=True)
def no_garbage_collection_during_the_test():
    """h5py holds its global lock while it calls our ranged reader, which waits for the in-process
    test proxy. A garbage collection run by a proxy thread that frees an old h5py object would wait
    for that lock: a deadlock that exists only because the proxy lives in the test process."""
    gc.collect()
    gc.disable()
    yield
    gc.enable()


@pytest.fixture
def cloud_path(bucket):
    return f"gs://{bucket.name}/arrays/measurements.hdf5"


def write_speed(datafile: Datafile) -> None:
    with datafile.open("w") as f:
        assert isinstance(f, h5py.File)
        f.create_dataset("speed", data=SPEED)


def test_cloud_hdf5_write_uploads_with_metadata(bucket, cloud_path, proxy):
    datafile = Datafile(cloud_path, tags={"n_samples": 3}, labels={"Lidar"})

    write_speed(datafile)

    assert proxy.kinds() == ["stat", "upload"]
    blob = bucket.get_blob("arrays/measurements.hdf5")
    assert blob.metadata["octue__tags"] == '{"n_samples": 3}'
    assert blob.metadata["octue__labels"] == '{"_type": "set", "items": ["lidar"]}'
    assert blob.metadata["octue__id"] == json.dumps(datafile.id)
    assert blob.download_as_bytes()[:8] == b"\x89HDF\r\n\x1a\n"
    assert blob.crc32c == datafile.hash_value == datafile.cloud_hash_value
    assert blob.size == datafile.size_bytes


def test_cloud_hdf5_read_back(bucket, cloud_path, proxy):
    written = Datafile(cloud_path, tags={"n_samples": 3})
    write_speed(written)
    proxy.reset()

    datafile = Datafile(cloud_path)
    with datafile.open() as f:
        assert isinstance(f, h5py.File)
        assert f.mode == "r"
        speed = f["speed"][:]

    assert speed.tolist() == SPEED
    assert proxy.kinds() == ["stat", "media"]
    assert (datafile.id, datafile.tags) == (written.id, {"n_samples": 3})


@pytest.mark.parametrize("mode", ["a", "r+"])
def test_cloud_hdf5_modify_reuploads(bucket, cloud_path, proxy, mode):
    write_speed(Datafile(cloud_path, tags={"n_samples": 3}))
    before = bucket.get_blob("arrays/measurements.hdf5")
    proxy.reset()

    datafile = Datafile(cloud_path)
    with datafile.open(mode) as f:
        assert f["speed"][:].tolist() == SPEED
        f["speed"][0] = 9.0
        f.create_dataset("direction", data=np.arange(4))
        datafile.tags["n_samples"] = 4

    assert proxy.kinds() == ["stat", "media", "upload"]
    after = bucket.get_blob("arrays/measurements.hdf5")
    assert after.generation != before.generation
    assert after.metadata["octue__tags"] == '{"n_samples": 4}'
    assert after.metadata["octue__id"] == before.metadata["octue__id"]
    with Datafile(cloud_path).open("r") as f:
        assert f["speed"][:].tolist() == [9.0, *SPEED[1:]]
        assert f["direction"][:].tolist() == [0, 1, 2, 3]


def test_cloud_hdf5_read_only_sends_nothing_back(bucket, cloud_path, proxy):
    write_speed(Datafile(cloud_path))
    generation = bucket.get_blob("arrays/measurements.hdf5").generation
    proxy.reset()

    with Datafile(cloud_path).open("r") as f:
        assert f["speed"].shape == (3,)

    assert proxy.kinds() == ["stat", "media"]
    assert bucket.get_blob("arrays/measurements.hdf5").generation == generation


def test_cloud_hdf5_exception_uploads_nothing(bucket, cloud_path, proxy):
    datafile = Datafile(cloud_path)

    with pytest.raises(RuntimeError, match="half written"), datafile.open("w") as f:
        f.create_dataset("speed", data=SPEED)
        raise RuntimeError("half written")

    assert proxy.kinds() == ["stat"]
    assert bucket.get_blob("arrays/measurements.hdf5") is None


def test_hdf5_refuses_text_modes(cloud_path):
    with pytest.raises(ValueError, match="HDF5 files open in modes"), Datafile(cloud_path).open("wb"):
        pass


def test_local_h5_datafile(tmp_path, proxy):
    path = tmp_path / "local" / "field.h5"
    datafile = Datafile(path, tags={"n_samples": 3}, labels={"local"})

    with datafile.open("w") as f:
        assert isinstance(f, h5py.File)
        f.create_dataset("speed", data=SPEED)

    assert h5py.is_hdf5(path)
    entry = json.loads((tmp_path / "local" / ".octue").read_text())["datafiles"]["field.h5"]
    assert (entry["id"], entry["tags"]) == (datafile.id, {"n_samples": 3})

    reopened = Datafile(path)
    with reopened.open("a") as f:
        f["speed"][2] = 6.0
    with Datafile(path).open() as f:
        assert f["speed"][:].tolist() == [*SPEED[:2], 6.0]
    assert (reopened.id, reopened.labels) == (datafile.id, {"local"})
    assert proxy.kinds() == []


def test_local_h5_upload_keeps_hdf5_content_type(bucket, tmp_path):
    datafile = Datafile(tmp_path / "field.h5", tags={"n_samples": 3})
    with datafile.open("w") as f:
        f.create_dataset("speed", data=SPEED)

    datafile.upload(f"gs://{bucket.name}/arrays/field.h5")

    blob = bucket.get_blob("arrays/field.h5")
    assert blob.content_type == "application/x-hdf5"
    assert blob.crc32c == datafile.hash_value
    with Datafile(f"gs://{bucket.name}/arrays/field.h5").open() as f:
        assert f["speed"][:].tolist() == SPEED


def test_golden_hdf5_metadata(bucket, cloud_path):
    """Octue's own bytes for an HDF5 file with tags {"n_samples": 3} and no timestamp or labels."""
    given = GOLDEN["given_to_octue"]
    datafile = Datafile(cloud_path, id="44444444-4444-4444-8444-444444444444", tags=given["tags"])

    with datafile.open("w") as f:
        f.create_dataset("samples", data=np.arange(given["tags"]["n_samples"]))

    blob = bucket.get_blob(GOLDEN["name"])
    assert blob.metadata == {
        **GOLDEN["object_custom_metadata"],
        "octue__id": '"44444444-4444-4444-8444-444444444444"',
    }
    assert blob.content_type == GOLDEN["object_content_type"]
    assert datafile.metadata() == {
        "octue__id": "44444444-4444-4444-8444-444444444444",
        "octue__timestamp": None,
        "octue__tags": {"n_samples": 3},
        "octue__labels": set(),
        "octue__sdk_version": "0.69.1",
    }


def test_cloud_hdf5_slice_reads_only_the_ranges_it_needs(bucket, tmp_path, proxy):
    local = tmp_path / "big.hdf5"
    values = np.arange(2048 * 1024, dtype="float64").reshape(2048, 1024)
    with h5py.File(local, "w") as file:
        file.create_dataset("values", data=values, chunks=(128, 128))
    bucket.blob("arrays/big.hdf5").upload_from_filename(str(local))
    size = local.stat().st_size
    proxy.reset()

    datafile = Datafile(f"gs://{bucket.name}/arrays/big.hdf5")
    with datafile.open() as file:
        block = file["values"][1000:1010, 500:510]

    np.testing.assert_array_equal(block, values[1000:1010, 500:510])
    media = [request for request in proxy.requests if request.kind == "media"]
    assert all(request.range is not None for request in media)
    assert sum(request.response_bytes for request in media) <= 0.2 * size
    assert not datafile.exists_locally
    assert proxy.kinds()[0] == "stat" and "upload" not in proxy.kinds() and "patch" not in proxy.kinds()
