"""`octuefs meta get|set` and `octuefs ls` against the real server and on local files."""

from __future__ import annotations

import json

import pytest

from octuefs.cli.main import main
from octuefs.metadata.codec import encode_cloud
from octuefs.metadata.model import OctueMetadata

ID = "11111111-1111-4111-8111-111111111111"


@pytest.fixture
def tagged(bucket):
    blob = bucket.blob("data/readings.csv")
    blob.metadata = {
        **encode_cloud(OctueMetadata.build(id=ID, tags={"site": "a"}, labels=["raw"])),
        "owner": "alice",
    }
    blob.upload_from_string(b"t,v\n0,1\n", content_type="text/csv")
    return f"gs://{bucket.name}/data/readings.csv"


def run_json(capsys, *arguments: str):
    assert main([*arguments, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_meta_get_cloud(tagged, capsys, proxy):
    proxy.reset()
    described = run_json(capsys, "meta", "get", tagged)
    assert described["id"] == ID and described["tags"] == {"site": "a"} and described["labels"] == ["raw"]
    assert proxy.kinds() == ["stat"]


def test_meta_set_cloud_is_one_patch_and_keeps_foreign_keys(tagged, bucket, capsys, proxy):
    proxy.reset()
    arguments = ["meta", "set", tagged, "--tag", "height=350", "--tag", "site=b", "--label", "Checked"]
    assert main([*arguments, "--remove-label", "raw", "--timestamp", "2024-01-01T00:00:00Z"]) == 0
    assert proxy.kinds() == ["stat", "patch"]
    blob = bucket.get_blob("data/readings.csv")
    assert json.loads(blob.metadata["octue__tags"]) == {"site": "b", "height": 350}
    assert json.loads(blob.metadata["octue__labels"])["items"] == ["checked"]
    assert json.loads(blob.metadata["octue__timestamp"])["value"] == "2024-01-01T00:00:00+00:00"
    assert blob.metadata["owner"] == "alice"
    assert "checked" in capsys.readouterr().out


def test_meta_set_bad_input_changes_nothing(tagged, bucket, capsys, proxy):
    before = bucket.get_blob("data/readings.csv").metadata
    proxy.reset()
    assert main(["meta", "set", tagged, "--label", "not valid!"]) == 1
    assert main(["meta", "set", tagged, "--tag", "Bad-Key=1"]) == 1
    assert main(["meta", "set", tagged, "--tag", "novalue"]) == 1
    error = capsys.readouterr().err
    assert "not valid!" in error and "Bad-Key" in error and "KEY=VALUE" in error
    assert "patch" not in proxy.kinds()
    assert bucket.get_blob("data/readings.csv").metadata == before


def test_meta_on_a_local_file_uses_its_octue_file(tmp_path, capsys):
    path = tmp_path / "local.csv"
    path.write_text("a\n")
    assert main(["meta", "set", str(path), "--tag", "unit=m_s", "--label", "local"]) == 0
    entry = json.loads((tmp_path / ".octue").read_text())["datafiles"]["local.csv"]
    assert entry["tags"] == {"unit": "m_s"} and entry["labels"]["items"] == ["local"]
    capsys.readouterr()
    described = run_json(capsys, "meta", "get", str(path))
    assert described["tags"] == {"unit": "m_s"} and described["id"] == entry["id"]


def test_meta_get_missing_object_fails_naming_it(bucket, capsys):
    assert main(["meta", "get", f"gs://{bucket.name}/nothing.csv"]) == 1
    assert "nothing.csv" in capsys.readouterr().err


def test_ls_filters_by_labels_and_tags(tagged, bucket, capsys, proxy):
    other = bucket.blob("data/other.csv")
    other.metadata = encode_cloud(OctueMetadata.build(tags={"site": "b"}, labels=["raw", "qc"]))
    other.upload_from_string(b"x")
    bucket.blob("data/plain.txt").upload_from_string(b"y")
    proxy.reset()

    everything = run_json(capsys, "ls", f"gs://{bucket.name}/data")
    raw = run_json(capsys, "ls", f"gs://{bucket.name}/data", "--labels", "raw")
    site_a = run_json(capsys, "ls", f"gs://{bucket.name}/data", "--labels", "raw", "--tag", "site=a")

    assert [item["path"].rsplit("/", 1)[1] for item in everything] == ["other.csv", "plain.txt", "readings.csv"]
    assert [item["path"].rsplit("/", 1)[1] for item in raw] == ["other.csv", "readings.csv"]
    assert [item["id"] for item in site_a] == [ID]
    assert proxy.kinds() == ["list", "list", "list"]


def test_ls_table(tagged, bucket, capsys):
    assert main(["ls", f"gs://{bucket.name}", "--recursive"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "SIZE", "CRC32C", "TIMESTAMP", "LABELS", "TAGS"]
    assert lines[1].split()[:2] == ["data/readings.csv", "8"] and lines[1].endswith("site=a")
