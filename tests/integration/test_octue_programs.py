"""Programs from the Octue SDK's own documentation, with only `octue` changed to `octuefs` in the imports.

Each runs as its own Python process against the real server (named by STORAGE_EMULATOR_HOST, as
it would be for the Octue SDK), in a fresh directory, with the documentation's `my-bucket` replaced
by the test's bucket. The snippets come from `docs/core_concepts/data_containers/datafiles.md` and
`downloading_datafiles.md` (0.69.1); the last ones use `octue.resources.label`, `.tag` and
`octue.exceptions` as Octue code does.
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.integration.datafile_objects import CSV, put_golden_csv
from tests.support.programs import REPOSITORY, run_program


def run(program: str, bucket: Any, proxy: Any, cwd: Path, **env: str) -> dict[str, Any]:
    """Run `program` (the docs' text, `my-bucket` meaning the test's bucket); it prints one JSON result."""
    source = textwrap.dedent(program).replace("my-bucket", bucket.name)
    imports = re.findall(r"^\s*(?:from|import) (\S+)", source, flags=re.MULTILINE)
    assert not [name for name in imports if name.split(".")[0] == "octue"], "only octuefs is imported"
    environment = {"STORAGE_EMULATOR_HOST": proxy.url, "PYTHONPATH": str(REPOSITORY), **env}
    return run_program(sys.executable, source, cwd, environment) or {}


def octue_fields(blob: Any) -> dict[str, Any]:
    return {
        key.removeprefix("octue__"): json.loads(value)
        for key, value in blob.metadata.items()
        if key.startswith("octue__")
    }


def test_key_features_write_local_and_cloud_datafiles_the_same_way(bucket, proxy, tmp_path):
    run(
        """
        from octuefs.resources import Datafile

        for datafile in (Datafile("path/to/file.dat"), Datafile("gs://my-bucket/path/to/file.dat")):
            with datafile.open("w") as f:
                f.write("Some data")
                datafile.labels.add("processed")
        """,
        bucket,
        proxy,
        tmp_path,
    )

    blob = bucket.get_blob("path/to/file.dat")
    assert blob.download_as_bytes() == b"Some data"
    assert octue_fields(blob)["labels"] == {"_type": "set", "items": ["processed"]}
    assert (tmp_path / "path/to/file.dat").read_text() == "Some data"
    local = json.loads((tmp_path / "path/to/.octue").read_text())["datafiles"]["file.dat"]
    assert local["labels"] == {"_type": "set", "items": ["processed"]}


def test_updating_metadata_inside_and_outside_the_context_manager(bucket, proxy, tmp_path):
    put_golden_csv(bucket, "data.csv")

    result = run(
        """
        import json
        from octuefs.resources import Datafile

        datafile = Datafile("gs://my-bucket/data.csv")
        before = sorted(datafile.labels)
        with datafile.open("a"):
            datafile.labels.add("updated")

        datafile.labels.add("updated-again")
        datafile.update_metadata()
        print(json.dumps({"before": before, "tags": dict(datafile.tags), "timestamp": str(datafile.timestamp)}))
        """,
        bucket,
        proxy,
        tmp_path,
    )

    assert result["before"] == ["a1", "met-mast", "wind-turbine"]
    assert result["timestamp"] == "2024-05-06 07:08:09.123456"
    blob = bucket.get_blob("data.csv")
    assert blob.download_as_bytes() == CSV
    assert octue_fields(blob)["labels"]["items"] == ["a1", "met-mast", "updated", "updated-again", "wind-turbine"]


def test_uploading_an_existing_local_datafile_and_checking_its_hashes_id_and_locality(bucket, proxy, tmp_path):
    (tmp_path / "my_datafile.dat").write_bytes(CSV)

    result = run(
        """
        import json
        from octuefs.resources import Datafile

        datafile = Datafile("my_datafile.dat", tags={"cleaned": True}, labels={"Vestas"})
        local = (datafile.exists_locally, datafile.exists_in_cloud)
        datafile.upload("gs://my-bucket/my_datafile.dat", update_metadata=True)

        cloud = Datafile("gs://my-bucket/my_datafile.dat")
        cloud_only = (cloud.exists_locally, cloud.exists_in_cloud)
        cloud.download()
        print(json.dumps({
            "local": local,
            "cloud_only": cloud_only,
            "downloaded": (cloud.exists_locally, cloud.exists_in_cloud),
            "hashes": [datafile.hash_value, cloud.hash_value],
            "metadata_hashes": [datafile.metadata_hash_value, cloud.metadata_hash_value],
            "ids": [datafile.id, cloud.id],
        }))
        """,
        bucket,
        proxy,
        tmp_path,
    )

    assert result["local"] == [True, False]
    assert result["cloud_only"] == [False, True]
    assert result["downloaded"] == [True, True]  # "A cloud datafile that has been downloaded" is both
    assert result["hashes"] == [bucket.get_blob("my_datafile.dat").crc32c] * 2
    assert result["metadata_hashes"][0] == result["metadata_hashes"][1]
    assert result["ids"][0] == result["ids"][1]
    assert octue_fields(bucket.get_blob("my_datafile.dat"))["labels"]["items"] == ["vestas"]


def test_examples_c_and_d(bucket, proxy, tmp_path):
    put_golden_csv(bucket, "path/to/data.csv")

    result = run(
        """
        import json
        from octuefs.resources import Datafile

        datafile = Datafile("gs://my-bucket/path/to/data.csv")
        with datafile.open() as f:
            data = f.read()
        metadata = datafile.metadata()

        datafile = Datafile("path/to/local/file.dat", tags={"cleaned": True, "type": "linear"}, labels={"Vestas"})
        with datafile.open("w") as f:
            f.write("This is some cleaned data.")
        datafile.upload("gs://my-bucket/path/to/data.dat")
        print(json.dumps({"data": data, "tags": metadata["octue__tags"]}))
        """,
        bucket,
        proxy,
        tmp_path,
    )

    assert result["data"] == CSV.decode()
    assert result["tags"]["manufacturer"] == "Vestas"
    blob = bucket.get_blob("path/to/data.dat")
    assert blob.download_as_bytes() == b"This is some cleaned data."
    assert octue_fields(blob)["tags"] == {"cleaned": True, "type": "linear"}


def test_downloading_to_a_permanent_location_three_ways(bucket, proxy, tmp_path):
    put_golden_csv(bucket, "path/to/file.dat")

    run(
        """
        from octuefs.resources import Datafile

        datafile = Datafile("gs://my-bucket/path/to/file.dat")
        datafile.download(local_path="my/local/path.csv")

        datafile = Datafile("gs://my-bucket/path/to/file.dat")
        datafile.local_path = "my/local/other.csv"

        datafile = Datafile("gs://my-bucket/path/to/file.dat", local_path="my/local/third.csv")
        with datafile.open() as f:
            f.read()
        """,
        bucket,
        proxy,
        tmp_path,
    )

    for name in ("path.csv", "other.csv", "third.csv"):
        assert (tmp_path / "my/local" / name).read_bytes() == CSV


def test_labels_tags_and_octues_exceptions(bucket, proxy, tmp_path):
    result = run(
        """
        import json
        from octuefs.exceptions import InvalidLabelException, InvalidTagException
        from octuefs.resources import Datafile
        from octuefs.resources.label import Label, LabelSet
        from octuefs.resources.tag import TagDict

        labels = LabelSet([Label("met-mast"), "wind"])
        labels.update("turbine", "a1")
        errors = []
        try:
            Label("not valid!")
        except InvalidLabelException:
            errors.append("label")
        tags = TagDict({"height": 350})
        try:
            tags["Bad-Key"] = 1
        except InvalidTagException:
            errors.append("tag")
        datafile = Datafile("gs://my-bucket/labelled.txt", labels=labels, tags=tags)
        with datafile.open("w") as f:
            f.write("x")
        print(json.dumps({
            "labels": sorted(labels),
            "starts": labels.any_label_starts_with("met"),
            "ends": labels.any_label_ends_with("ine"),
            "contains": labels.any_label_contains("ind"),
            "errors": errors,
            "tags": tags.to_primitive(),
        }))
        """,
        bucket,
        proxy,
        tmp_path,
    )

    assert result == {
        "labels": ["a1", "met-mast", "turbine", "wind"],
        "starts": True,
        "ends": True,
        "contains": True,
        "errors": ["label", "tag"],
        "tags": {"height": 350},
    }
    assert octue_fields(bucket.get_blob("labelled.txt"))["labels"]["items"] == ["a1", "met-mast", "turbine", "wind"]


def test_a_datafile_sent_as_serialised_json_and_read_through_a_signed_url(bucket, proxy, tmp_path, signing_key):
    put_golden_csv(bucket, "shared.csv")

    result = run(
        """
        import datetime, json
        from octuefs.resources import Datafile

        datafile = Datafile("gs://my-bucket/shared.csv")
        url = datafile.generate_signed_url(expiration=datetime.timedelta(hours=1))
        received = Datafile.deserialise(Datafile(url).serialise(), from_string=True)
        with received.open() as f:
            data = f.read()
        print(json.dumps({"data": data, "tags": dict(received.tags), "name": received.name}))
        """,
        bucket,
        proxy,
        tmp_path,
        GOOGLE_APPLICATION_CREDENTIALS=str(signing_key),
    )

    assert result["data"] == CSV.decode()
    assert result["name"] == "shared.csv"
    assert result["tags"]["manufacturer"] == "Vestas"


@pytest.mark.parametrize("module", ["octuefs.resources", "octuefs.exceptions"])
def test_the_modules_octue_code_imports_exist(module):
    names = {
        "octuefs.resources": ["Datafile", "Dataset", "Label", "LabelSet", "TagDict"],
        "octuefs.exceptions": [
            "CloudLocationNotSpecified",
            "FileNotFoundException",
            "InvalidInputException",
            "InvalidLabelException",
            "InvalidTagException",
            "OctueSDKException",
            "ReadOnlyResource",
        ],
    }[module]
    imported = __import__(module, fromlist=names)
    assert all(hasattr(imported, name) for name in names)
