"""Sample datafiles for the demo: a few CSVs and a chunked HDF5 file, with and without Octue metadata."""

from __future__ import annotations

import importlib.util
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from octuefs.datafile import Datafile
from octuefs.dataset import Dataset
from octuefs.storage.gcs import get_storage

CSV_SAMPLES = {
    "tables/readings.csv": (
        "time,speed\n0,3.5\n1,4.25\n",
        {"manufacturer": "Vestas", "height": 350, "is_on": True},
        {"met-mast", "wind-turbine"},
        datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC),
    ),
    "tables/turbines.csv": (
        "id,model,rated_kw\n1,V90,2000\n2,V112,3450\n",
        {"site": "whitelee", "count": 2},
        {"inventory"},
        datetime(2023, 1, 1, tzinfo=UTC),
    ),
}
UNTAGGED_SAMPLES = {"notes/README.txt": "These notes were uploaded without any Octue metadata.\n"}


def seed_bucket(bucket: str) -> list[str]:
    """Create the bucket and write the samples through the Datafile engine; returns the gs:// paths."""
    storage = get_storage()
    storage.create_bucket(bucket)
    written = []
    with tempfile.TemporaryDirectory(prefix="octuefs-samples-") as directory:
        root = Path(directory)
        for name, (text, tags, labels, timestamp) in CSV_SAMPLES.items():
            local = root / name
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_text(text)
            datafile = Datafile(local, tags=tags, labels=labels, timestamp=timestamp)
            written.append(datafile.upload(f"gs://{bucket}/{name}"))
        for name, text in UNTAGGED_SAMPLES.items():
            local = root / name
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_text(text)
            storage.upload(bucket, name, local, "text/plain", {}, 0)
            written.append(f"gs://{bucket}/{name}")
        written.extend(_seed_hdf5(bucket, root))
    return written


def _seed_hdf5(bucket: str, root: Path) -> list[str]:
    if importlib.util.find_spec("h5py") is None:
        return []
    import numpy as np

    local = root / "arrays" / "measurements.hdf5"
    local.parent.mkdir(parents=True, exist_ok=True)
    datafile = Datafile(local, tags={"n_samples": 4096, "units": "m_s"}, labels={"simulated"})
    with datafile.open("w") as file:
        speeds = 8 + np.sin(np.linspace(0, 20, 4096 * 16)).reshape(4096, 16)
        file.create_dataset("wind_speed", data=speeds, chunks=(256, 16))
    return [datafile.upload(f"gs://{bucket}/arrays/measurements.hdf5")]


def seed_bucket_from(bucket: str, directory: Path) -> list[str]:
    """Create the bucket and upload every file under `directory`, with the Octue metadata its `.octue`
    files hold, keeping the relative paths; returns the gs:// paths."""
    get_storage().create_bucket(bucket)
    root = directory.absolute()
    return [
        datafile.upload(f"gs://{bucket}/{Path(datafile.path).relative_to(root).as_posix()}")
        for datafile in Dataset(root, recursive=True)
    ]
