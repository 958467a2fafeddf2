"""The live cross-check: the real Octue SDK 0.69.1 and octuefs read what each other writes, through the server.

The golden data (tests/data) fixes what Octue wrote once; these tests ask the SDK itself, every run.
It is installed apart, in `.venv-octue` (`bash scripts/install-octue.sh`, which `scripts/test.sh` runs),
and each check runs a small program in that interpreter, pointed at the bundled server by
STORAGE_EMULATOR_HOST as any GCS emulator is. Without `.venv-octue` these tests skip (fail under
OCTUEFS_REQUIRE_ALL=1). Select them with `pytest -m octue`.
"""

from __future__ import annotations

import json
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from octuefs import Datafile, Dataset
from octuefs.metadata.codec import OCTUE_CLOUD_KEYS
from tests.conftest import unavailable
from tests.integration.datafile_objects import gs, put_golden_csv
from tests.support.programs import REPOSITORY, run_program

pytestmark = pytest.mark.octue

OCTUE_PYTHON = REPOSITORY / ".venv-octue" / "bin" / "python"

# Octue builds every storage client with google.auth.default(), which needs Google credentials; the
# emulator takes anonymous requests, so the programs make it answer anonymous ones. Nothing else of
# Octue's is changed.
OCTUE_PREAMBLE = """
import json, sys
import google.auth
from google.auth.credentials import AnonymousCredentials
google.auth.default = lambda *args, **kwargs: (AnonymousCredentials(), "octuefs-test")
from octue.utils.decoders import OctueJSONDecoder
from octue.utils.encoders import OctueJSONEncoder
INPUTS = json.loads(sys.stdin.read(), cls=OctueJSONDecoder)
def report(result):
    print(json.dumps(result, cls=OctueJSONEncoder))
def described(datafile):
    return {"id": datafile.id, "timestamp": datafile.timestamp, "tags": dict(datafile.tags),
            "labels": sorted(str(label) for label in datafile.labels)}
"""

ID = "22222222-2222-4222-8222-222222222222"
DATASET_ID = "33333333-3333-4333-8333-333333333333"
TIMESTAMP = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
TAGS = {
    "manufacturer": "\u00d8rsted",
    "height": 350,
    "ratio": 0.5,
    "is_on": True,
    "nothing": None,
    "nested": {"list": [1, "two", 3.0], "flag": False},
    "commissioned": datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC),
    "phases": {"b", "a"},
}
LABELS = ["wind-turbine", "met-mast", "a1"]
DATAFILE = {"id": ID, "timestamp": TIMESTAMP, "tags": TAGS, "labels": LABELS}
DATASET = {"id": DATASET_ID, "name": "North Sea \u2014 2024", "tags": TAGS, "labels": LABELS}
CONTENT = "time,speed\n0,3.5\n1,4.25\n"


@pytest.fixture
def octue(proxy, tmp_path):
    """Run a program in the real Octue SDK's interpreter (after OCTUE_PREAMBLE) against the server."""
    if not OCTUE_PYTHON.exists():
        unavailable(f"the Octue SDK is not installed in {OCTUE_PYTHON.parent.parent}: bash scripts/install-octue.sh")

    def run(program: str, inputs: Any = None) -> Any:
        return run_program(
            OCTUE_PYTHON,
            OCTUE_PREAMBLE + textwrap.dedent(program),
            tmp_path,
            {"STORAGE_EMULATOR_HOST": proxy.url},
            inputs,
        )

    return run


def described(datafile: Datafile) -> dict[str, Any]:
    return {
        "id": datafile.id,
        "timestamp": datafile.timestamp,
        "tags": dict(datafile.tags),
        "labels": sorted(datafile.labels),
    }


def write_local(path: Path, **metadata: Any) -> Datafile:
    """A local datafile written through octuefs, its metadata in the folder's `.octue`."""
    datafile = Datafile(path, **metadata)
    with datafile.open("w") as f:
        f.write(CONTENT)
    return datafile


EXPECTED_DATAFILE = {**DATAFILE, "labels": sorted(LABELS)}


def test_octue_reads_datafiles_octuefs_wrote(bucket, octue, tmp_path):
    write_local(tmp_path / "local" / "readings.csv", **DATAFILE).upload(gs(bucket, "uploaded.csv"))
    streamed = Datafile(gs(bucket, "streamed.csv"))
    with streamed.open("w") as f:
        f.write(CONTENT)
        streamed.labels.add("written")
    put_golden_csv(bucket, "patched.csv")
    patched = Datafile(gs(bucket, "patched.csv"))
    patched.tags["height"] = 351
    patched.labels = {"checked"}
    patched.update_metadata()

    read = octue(
        """
        from octue.resources import Datafile
        found = {}
        for path in INPUTS:
            datafile = Datafile(path)
            with datafile.open() as f:
                found[path] = {**described(datafile), "content": f.read()}
        report(found)
        """,
        [
            gs(bucket, "uploaded.csv"),
            gs(bucket, "streamed.csv"),
            gs(bucket, "patched.csv"),
            str(tmp_path / "local/readings.csv"),
        ],
    )

    for path in (gs(bucket, "uploaded.csv"), str(tmp_path / "local/readings.csv")):
        assert read[path] == {**EXPECTED_DATAFILE, "content": CONTENT}
    assert read[gs(bucket, "streamed.csv")] == {**described(streamed), "content": CONTENT}
    assert read[gs(bucket, "streamed.csv")]["labels"] == ["written"]
    assert read[gs(bucket, "patched.csv")]["tags"]["height"] == 351
    assert read[gs(bucket, "patched.csv")] == {**described(Datafile(gs(bucket, "patched.csv"))), "content": CONTENT}


def test_octue_reads_datasets_octuefs_wrote_in_the_cloud_and_in_a_folder(bucket, octue, tmp_path):
    folder = tmp_path / "north-sea"
    write_local(folder / "readings.csv", **DATAFILE)
    write_local(folder / "nested" / "more.csv", labels=["nested"])
    Dataset(folder, **DATASET).update_metadata()
    Dataset(folder).upload(gs(bucket, "north-sea"))
    with Dataset(gs(bucket, "north-sea")) as cloud:
        cloud.labels.add("uploaded")
    plain = Dataset(gs(bucket, "plain"))
    plain.add(Datafile(folder / "readings.csv"))
    plain.update_metadata()  # no labels: what made Octue raise InvalidLabelException('_type')

    read = octue(
        """
        from octue.resources import Dataset
        found = {}
        for path in INPUTS:
            dataset = Dataset(path)
            found[path] = {
                "id": dataset.id, "name": dataset.name, "tags": dict(dataset.tags),
                "labels": sorted(str(label) for label in dataset.labels),
                "files": {datafile.name: described(datafile) for datafile in dataset.files},
            }
        report(found)
        """,
        [str(folder), gs(bucket, "north-sea"), gs(bucket, "plain")],
    )

    files = {"readings.csv": EXPECTED_DATAFILE, "more.csv": described(Datafile(folder / "nested" / "more.csv"))}
    assert read[str(folder)] == {**DATASET, "labels": sorted(LABELS), "files": files}
    assert read[gs(bucket, "north-sea")] == {**DATASET, "labels": sorted([*LABELS, "uploaded"]), "files": files}
    assert read[gs(bucket, "plain")] == {
        "id": plain.id,
        "name": "plain",
        "tags": {},
        "labels": [],
        "files": {"readings.csv": EXPECTED_DATAFILE},
    }


OCTUE_WRITES = """
import os
from octue.resources import Datafile, Dataset
folder, bucket = INPUTS["folder"], INPUTS["bucket"]
datafile = Datafile(os.path.join(folder, "readings.csv"), **INPUTS["datafile"])
with datafile.open("w") as f:
    f.write(INPUTS["content"])
datafile.upload(f"gs://{bucket}/{INPUTS['prefix']}/readings.csv")
Dataset(folder, **INPUTS["dataset"]).update_local_metadata()
Dataset(f"gs://{bucket}/{INPUTS['prefix']}", **INPUTS["dataset"]).update_cloud_metadata()
report({
    "uploaded": datafile.serialise(),
    "local": Datafile(os.path.join(folder, "readings.csv")).serialise(),
    "dataset": Dataset(folder).serialise(),
    "datafile_hash": datafile.hash_value, "dataset_hash": Dataset(folder).hash_value,
})
"""


def octue_writes(octue, bucket, folder: Path, prefix: str) -> dict[str, Any]:
    inputs = {"folder": str(folder), "bucket": bucket.name, "prefix": prefix, "content": CONTENT}
    return octue(OCTUE_WRITES, {**inputs, "datafile": DATAFILE, "dataset": DATASET})


def test_octuefs_reads_what_octue_wrote(bucket, octue, tmp_path):
    folder = tmp_path / "north-sea"
    octue_writes(octue, bucket, folder, "octue-wrote")

    uploaded = Datafile(gs(bucket, "octue-wrote/readings.csv"))
    local = Datafile(folder / "readings.csv")
    assert described(uploaded) == described(local) == EXPECTED_DATAFILE
    with uploaded.open() as f:
        assert f.read() == CONTENT
    for dataset in (Dataset(folder), Dataset(gs(bucket, "octue-wrote"))):
        assert (dataset.id, dataset.name, dict(dataset.tags), dataset.labels) == (
            DATASET_ID,
            DATASET["name"],
            TAGS,
            set(LABELS),
        )
        assert [described(datafile) for datafile in dataset.files] == [EXPECTED_DATAFILE]


def test_both_write_the_same_bytes_for_the_same_inputs(bucket, octue, tmp_path):
    octue_folder, octuefs_folder = tmp_path / "octue" / "north-sea", tmp_path / "octuefs" / "north-sea"
    octues = octue_writes(octue, bucket, octue_folder, "octue-wrote")

    datafile = write_local(octuefs_folder / "readings.csv", **DATAFILE)
    datafile.upload(gs(bucket, "octuefs-wrote/readings.csv"))
    Dataset(octuefs_folder, **DATASET).update_local_metadata()
    Dataset(gs(bucket, "octuefs-wrote"), **DATASET).update_cloud_metadata()

    def same_paths(text: str) -> str:
        return text.replace(str(octue_folder), str(octuefs_folder)).replace("octue-wrote", "octuefs-wrote")

    octue_object, octuefs_object = (
        bucket.get_blob("octue-wrote/readings.csv"),
        bucket.get_blob("octuefs-wrote/readings.csv"),
    )
    assert set(octuefs_object.metadata) == OCTUE_CLOUD_KEYS
    assert octuefs_object.metadata == octue_object.metadata
    assert octuefs_object.content_type == octue_object.content_type
    octue_document = bucket.get_blob("octue-wrote/.octue").download_as_text()
    assert bucket.get_blob("octuefs-wrote/.octue").download_as_text() == same_paths(octue_document)
    assert '"labels": ["a1", "met-mast", "wind-turbine"]' in octue_document
    assert (octuefs_folder / ".octue").read_text() == same_paths((octue_folder / ".octue").read_text())
    assert json.loads((octuefs_folder / ".octue").read_text())["datafiles"]["readings.csv"]["sdk_version"] == "0.69.1"
    assert Datafile(octuefs_folder / "readings.csv").serialise() == same_paths(octues["local"])
    # A datafile in the cloud carries the object's record in `_cloud_metadata` (Octue's is empty after an
    # upload; octuefs's holds the stat, so the receiver needs no request): the rest is the same.
    uploaded, octues_uploaded = json.loads(datafile.serialise()), json.loads(same_paths(octues["uploaded"]))
    assert octues_uploaded.pop("_cloud_metadata") == {} and uploaded.pop("_cloud_metadata")["crc32c"]
    assert uploaded == octues_uploaded
    assert Dataset(octuefs_folder).serialise() == same_paths(octues["dataset"])
    assert (datafile.hash_value, Dataset(octuefs_folder).hash_value) == (
        octues["datafile_hash"],
        octues["dataset_hash"],
    )


def test_a_program_printing_metadata_prints_what_octue_prints(bucket, octue, tmp_path):
    """Octue's docs show `datafile.tags` printing as a plain dict; scripts and logs compare that text.

    Tags whose repr does not depend on hash order or the local time zone, so the two texts can be compared.
    """
    tags = {"manufacturer": "\u00d8rsted", "height": 350, "nested": {"list": [1, "two"]}, "nothing": None}
    write_local(tmp_path / "north-sea" / "readings.csv", tags=tags).upload(gs(bucket, "north-sea/readings.csv"))
    Dataset(gs(bucket, "north-sea"), name="north-sea", tags=tags).update_cloud_metadata()
    program = """
        datafile = Datafile(INPUTS["datafile"])
        dataset = Dataset(INPUTS["dataset"])
        report([repr(datafile.tags), str(datafile.tags), repr(dataset.tags), repr(datafile), repr(dataset)])
    """
    inputs = {"datafile": gs(bucket, "north-sea/readings.csv"), "dataset": gs(bucket, "north-sea")}

    printed_by_octue = octue("from octue.resources import Datafile, Dataset\n" + textwrap.dedent(program), inputs)
    printed_by_octuefs = run_program(
        sys.executable,
        "import json, sys\n"
        "from octuefs.resources import Datafile, Dataset\n"
        "INPUTS = json.loads(sys.stdin.read())\n"
        "def report(result):\n"
        "    print(json.dumps(result))\n" + textwrap.dedent(program),
        tmp_path,
        {},
        inputs,
    )

    assert printed_by_octuefs == printed_by_octue
    assert printed_by_octue[0] == repr(tags)


@pytest.mark.parametrize("where", ["cloud", "folder"])
def test_octues_change_to_a_dataset_octuefs_holds_is_kept_when_octuefs_saves(where, bucket, octue, tmp_path):
    """A service (Octue) labels a dataset while a program (octuefs) has it open; the program's save keeps it."""
    folder = tmp_path / "north-sea"
    write_local(folder / "readings.csv").upload(gs(bucket, "north-sea/readings.csv"))
    path = gs(bucket, "north-sea") if where == "cloud" else str(folder)
    held = Dataset(path)  # no dataset entry yet: the service writes the first one
    octue(
        """
        from octue.resources import Dataset
        dataset = Dataset(INPUTS)
        dataset.labels.add("checked")
        dataset.tags["checked_by"] = "service"
        dataset.update_metadata()
        """,
        path,
    )

    held.labels.add("plotted")
    held.update_metadata()

    read = octue(
        """
        from octue.resources import Dataset
        dataset = Dataset(INPUTS)
        report({"labels": sorted(str(label) for label in dataset.labels), "tags": dict(dataset.tags)})
        """,
        path,
    )
    assert read == {"labels": ["checked", "plotted"], "tags": {"checked_by": "service"}}


# Nested folders, non-ASCII names, every kind of tag; one datafile changed by each in turn.

NESTED_FILES = {
    "top.csv": {"tags": {**TAGS, "index": 0}, "labels": ["all", "top"]},
    "sub/one.csv": {"tags": {"index": 1, "when": [datetime(2020, 1, 1)], "empty": set()}, "labels": ["all"]},
    "sub/deeper/\u00fcn\u00ef c\u00f8d\u00e9 \u20ac.csv": {"tags": {"index": 2, "nested": {"x": {"y": [1]}}}},
    "\u65e5\u672c/\u30d5\u30a1\u30a4\u30eb.json": {"tags": {"index": 3}, "labels": ["all", "json"]},
}
for number, metadata in enumerate(NESTED_FILES.values()):
    metadata["id"] = f"{ID[:-1]}{number}"

OCTUE_WRITES_NESTED = """
import os
from octue.resources import Datafile, Dataset
for relative, metadata in INPUTS["files"].items():
    datafile = Datafile(os.path.join(INPUTS["folder"], relative), **metadata)
    with datafile.open("w") as f:
        f.write(relative)
Dataset(INPUTS["folder"], **INPUTS["dataset"]).update_local_metadata()
Dataset(INPUTS["folder"]).upload(INPUTS["cloud"])
"""

OCTUE_READS_NESTED = """
from octue.resources import Dataset
found = {}
for path in INPUTS:
    dataset = Dataset(path)
    files = {}
    for datafile in dataset.files:
        with datafile.open() as f:
            content = f.read()
        files[content] = {**described(datafile), "name": datafile.name}
    found[path] = {"id": dataset.id, "name": dataset.name, "labels": sorted(str(label) for label in dataset.labels),
                   "files": files, "lt_two": sorted(f.name for f in dataset.files.filter(tags__index__lt=2)),
                   "all": sorted(f.name for f in dataset.files.filter(labels__contains="all"))}
report(found)
"""


def octuefs_reads_nested(path: str | Path) -> dict[str, Any]:
    """What OCTUE_READS_NESTED reports, read through octuefs."""
    dataset = Dataset(path)
    files = {}
    for datafile in dataset.files:
        with datafile.open() as f:
            files[f.read()] = {**described(datafile), "name": datafile.name}
    return {
        "id": dataset.id,
        "name": dataset.name,
        "labels": sorted(dataset.labels),
        "files": files,
        "lt_two": sorted(datafile.name for datafile in dataset.files.filter(tags__index__lt=2)),
        "all": sorted(datafile.name for datafile in dataset.files.filter(labels__contains="all")),
    }


def test_nested_datasets_with_every_kind_of_tag_and_non_ascii_names_read_both_ways(bucket, octue, tmp_path):
    octuefs_folder, octue_folder = tmp_path / "octuefs" / "north-sea", tmp_path / "octue" / "north-sea"
    for relative, metadata in NESTED_FILES.items():
        datafile = Datafile(octuefs_folder / relative, **metadata)
        with datafile.open("w") as f:
            f.write(relative)
    Dataset(octuefs_folder, **DATASET).update_local_metadata()
    Dataset(octuefs_folder).upload(gs(bucket, "octuefs-wrote"))
    octue(
        OCTUE_WRITES_NESTED,
        {"files": NESTED_FILES, "folder": str(octue_folder), "dataset": DATASET, "cloud": gs(bucket, "octue-wrote")},
    )

    read_by_octue = octue(OCTUE_READS_NESTED, [str(octuefs_folder), gs(bucket, "octuefs-wrote")])
    expected = octuefs_reads_nested(octuefs_folder)
    assert read_by_octue == {str(octuefs_folder): expected, gs(bucket, "octuefs-wrote"): expected}
    assert octuefs_reads_nested(octue_folder) == octuefs_reads_nested(gs(bucket, "octue-wrote")) == expected
    assert expected["files"]["sub/one.csv"]["tags"] == NESTED_FILES["sub/one.csv"]["tags"]
    assert expected["files"]["top.csv"]["tags"] == {**TAGS, "index": 0}
    assert expected["lt_two"] == ["one.csv", "top.csv"]
    assert len(expected["files"]) == len(NESTED_FILES)
    for relative in ("", "sub", "sub/deeper", "\u65e5\u672c"):
        octues_text = (octue_folder / relative / ".octue").read_text().replace(str(octue_folder), str(octuefs_folder))
        assert (octuefs_folder / relative / ".octue").read_text() == octues_text
    for relative in NESTED_FILES:
        octues = bucket.get_blob(f"octue-wrote/{relative}")
        assert bucket.get_blob(f"octuefs-wrote/{relative}").metadata == octues.metadata


@pytest.mark.parametrize("where", ["cloud", "folder"])
def test_a_datafile_changed_by_each_in_turn(where, bucket, octue, tmp_path):
    path = gs(bucket, "turns/\u00fcn\u00ef.csv") if where == "cloud" else str(tmp_path / "turns" / "\u00fcn\u00ef.csv")
    first = Datafile(path, tags={"by": "octuefs"}, labels={"first"})
    with first.open("w") as f:
        f.write("octuefs\n")
    octues_turn = """
        from datetime import datetime
        from octue.resources import Datafile
        datafile = Datafile(INPUTS)
        with datafile.open("a") as f:
            f.write("octue\\n")
        datafile.tags["by"] = "octue"
        datafile.tags["when"] = datetime(2024, 2, 3, 4, 5, 6)
        datafile.labels.add("second")
        datafile.update_metadata()
    """
    octue(octues_turn, path)

    second = Datafile(path)
    with second.open("a") as f:
        f.write("octuefs again\n")
        second.tags["phases"] = {"b", "a"}
        second.labels.add("third")

    read = octue(
        """
        from octue.resources import Datafile
        datafile = Datafile(INPUTS)
        with datafile.open() as f:
            report({**described(datafile), "content": f.read()})
        """,
        path,
    )
    assert read == {**described(Datafile(path)), "content": "octuefs\noctue\noctuefs again\n"}
    assert read["tags"] == {"by": "octue", "when": datetime(2024, 2, 3, 4, 5, 6), "phases": {"a", "b"}}
    assert read["labels"] == ["first", "second", "third"]
    assert read["id"] == first.id
