"""Programs from the Octue SDK's own documentation, with only `octue` changed to `octuefs` in the imports.

Each runs as its own Python process against the real server (named by STORAGE_EMULATOR_HOST, as
it would be for the Octue SDK), in a fresh directory, with the documentation's `my-bucket` replaced
by the test's bucket. The snippets come from `docs/core_concepts/data_containers/datafiles.md`,
`downloading_datafiles.md` and `datasets.md` (0.69.1); others use `octue.resources.label`, `.tag` and
`octue.exceptions` as Octue code does. Where a snippet could not run as printed (a missing bracket,
a program not installed) the change is said where it is made.
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from octuefs import Dataset
from tests.integration.datafile_objects import CSV, put, put_golden_csv
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


def test_examples_a_and_b_and_a_program_given_the_local_path(bucket, proxy, tmp_path):
    put_golden_csv(bucket, "path/to/data.csv")

    result = run(
        """
        import json
        import subprocess
        from datetime import datetime
        from octuefs.resources import Datafile


        def metadata_calculating_function(data):
            return {"timestamp": datetime(2024, 1, 2), "tags": {"rows": data.count("\\n")}, "labels": {"counted"}}


        datafile = Datafile("gs://my-bucket/path/to/data.csv")

        with datafile.open() as f:
            data = f.read()
            new_metadata = metadata_calculating_function(data)

            datafile.timestamp = new_metadata["timestamp"]
            datafile.tags = new_metadata["tags"]
            datafile.labels = new_metadata["labels"]

        # The docs run `openfast`, which is not installed here: `cat` stands for it.
        output = subprocess.check_output(["cat", datafile.local_path])

        datafile = Datafile("gs://my-bucket/path/to/data.csv")
        after_a = [str(datafile.timestamp), dict(datafile.tags), sorted(datafile.labels)]

        datafile.timestamp = datetime.now()
        datafile.tags = {"manufacturer": "Vestas", "output": "1MW"}
        datafile.labels = {"new"}

        datafile.upload(update_metadata=True)  # Or, datafile.update_metadata()
        print(json.dumps({"output": output.decode(), "after_a": after_a}))
        """,
        bucket,
        proxy,
        tmp_path,
    )

    assert result["output"] == CSV.decode()
    assert result["after_a"] == ["2024-01-02 00:00:00", {"rows": CSV.decode().count("\n")}, ["counted"]]
    fields = octue_fields(bucket.get_blob("path/to/data.csv"))
    assert fields["tags"] == {"manufacturer": "Vestas", "output": "1MW"}
    assert fields["labels"] == {"_type": "set", "items": ["new"]}
    assert bucket.get_blob("path/to/data.csv").download_as_bytes() == CSV


def test_datasets_local_and_cloud_upload_download_metadata_hashes_and_locality(bucket, proxy, tmp_path):
    for name in ("a.csv", "deeper/b.csv"):
        put(bucket, f"path/to/dataset/{name}", CSV, "text/csv")
        (tmp_path / "path/to/dataset" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "path/to/dataset" / name).write_bytes(CSV)
    Dataset(
        f"gs://{bucket.name}/path/to/dataset",
        name="my-dataset",
        labels={"processed"},
        tags={"organisation": "octue", "energy": "renewable"},
    ).update_metadata()

    result = run(
        """
        import json
        from octuefs.resources import Dataset

        # Local dataset
        dataset = Dataset(path="path/to/dataset")
        local = [len(dataset.files), dataset.exists_locally, dataset.exists_in_cloud, dataset.hash_value]

        # Dataset in cloud bucket
        dataset = Dataset(path="gs://my-bucket/path/to/dataset")

        dataset.upload("gs://my-bucket/path/to/upload")
        dataset.download("path/to/download")

        read = [dataset.name, sorted(dataset.labels), dict(dataset.tags)]

        with dataset:
            dataset.labels.add("updated")  # the docs write `datafile.labels` here, a slip: no datafile is named

        dataset.labels.add("updated-again")
        dataset.update_metadata()

        print(json.dumps({
            "local": local,
            "read": read,
            "hashes": [dataset.hash_value, dataset.metadata_hash_value],
            "id": dataset.id,
            "locality": [dataset.exists_locally, dataset.exists_in_cloud],
        }))
        """,
        bucket,
        proxy,
        tmp_path,
    )

    assert result["local"] == [2, True, False, result["hashes"][0]]
    assert result["read"] == ["my-dataset", ["processed"], {"organisation": "octue", "energy": "renewable"}]
    assert result["locality"] == [False, True]
    for name in ("a.csv", "deeper/b.csv"):
        assert bucket.get_blob(f"path/to/upload/{name}").download_as_bytes() == CSV
        assert (tmp_path / "path/to/download" / name).read_bytes() == CSV
    stored = json.loads(bucket.get_blob("path/to/upload/.octue").download_as_text())["dataset"]
    assert stored["labels"] == ["processed", "updated", "updated-again"]
    assert stored["id"] == result["id"]
    assert Dataset(f"gs://{bucket.name}/path/to/upload").metadata_hash_value == result["hashes"][1]


def test_filtering_and_ordering_a_dataset(proxy, bucket, tmp_path):
    result = run(
        """
        import json
        from octuefs.resources import Datafile, Dataset

        def names(files):
            return sorted(datafile.name for datafile in files)

        # Make a dataset (the docs' example lacks a "]" after "all"; "b" "all" is theirs: one label, "ball").
        dataset = Dataset(
            path="blah",
            files=[
                Datafile(path="my_file.csv", labels=["one", "a", "b" "all"]),
                Datafile(path="your_file.txt", labels=["two", "a", "b", "all"]),
                Datafile(path="another_file.csv", labels=["three", "all"]),
            ]
        )

        iterated = []
        for datafile in dataset.files.filter(labels__contains="a"):
            iterated.append(datafile.name)

        print(json.dumps({
            "starts_with": names(dataset.files.filter(name__starts_with="my")),
            "extension": names(dataset.files.filter(extension="csv")),
            "contains": names(dataset.files.filter(labels__contains="a")),
            "iterated": sorted(iterated),
            "one": dataset.files.filter(name__starts_with="my").one().name,
            "chained": names(dataset.files.filter(extension="csv").filter(labels__contains="a")),
            "at_once": names(dataset.files.filter(extension="csv", labels__contains="a")),
            "ordered": [datafile.name for datafile in dataset.files.order_by("name")],
            "reversed": [datafile.name for datafile in dataset.files.order_by("name", reverse=True)],
            "repr": repr(dataset.files.filter(name__starts_with="my")),
        }))
        """,
        bucket,
        proxy,
        tmp_path,
    )

    assert result["starts_with"] == ["my_file.csv"]
    assert result["extension"] == ["another_file.csv", "my_file.csv"]
    assert result["contains"] == result["iterated"] == ["my_file.csv", "your_file.txt"]
    assert result["one"] == "my_file.csv"
    assert result["chained"] == result["at_once"] == ["my_file.csv"]
    assert result["ordered"] == ["another_file.csv", "my_file.csv", "your_file.txt"]
    assert result["reversed"] == result["ordered"][::-1]
    # The docs print `<FilterSet({...})>`; Octue 0.69.1 itself prints a set's repr, as octuefs does.
    assert result["repr"] == "FilterSet({<Datafile('my_file.csv')>})"


@pytest.mark.parametrize("module", ["octuefs.resources", "octuefs.resources.filter_containers", "octuefs.exceptions"])
def test_the_modules_octue_code_imports_exist(module):
    names = {
        "octuefs.resources": ["Datafile", "Dataset", "Label", "LabelSet", "Tag", "TagDict"],
        "octuefs.resources.filter_containers": ["FilterDict", "FilterList", "FilterSet"],
        "octuefs.exceptions": [
            "BrokenSequenceException",
            "UnexpectedNumberOfResultsException",
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
