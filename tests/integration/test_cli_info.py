"""`octuefs info PATH`, run as the installed console script and in-process through `main()`.

The subprocess runs talk to the server through the counting proxy too, so the request log
shows that `info` on a cloud object reads its metadata once and downloads nothing.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

import octuefs
from octuefs import Datafile
from octuefs.cli.main import main
from octuefs.errors import MalformedMetadataWarning
from tests.support.golden import GOLDEN_OBJECTS

OCTUEFS = Path(sys.executable).parent / "octuefs"
GOLDEN_CSV = GOLDEN_OBJECTS[0]
CSV = GOLDEN_CSV["content"].encode()
EXPECTED_TAGS = GOLDEN_CSV["given_to_octue"]["tags"]


def run_cli(*arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(OCTUEFS), *arguments], capture_output=True, text=True, env=env, timeout=60)


def proxied_env(proxy) -> dict[str, str]:
    return {**os.environ, "STORAGE_EMULATOR_HOST": proxy.url}


def parse_text(output: str) -> dict[str, str]:
    """`key:  value` lines into a dict (values split at the first colon only)."""
    fields = {}
    for line in output.splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


@pytest.fixture
def golden_csv(bucket, proxy):
    """The CSV object exactly as the Octue SDK wrote it."""
    blob = bucket.blob(GOLDEN_CSV["name"])
    blob.metadata = GOLDEN_CSV["object_custom_metadata"]
    blob.upload_from_string(CSV, content_type=GOLDEN_CSV["object_content_type"])
    proxy.reset()
    return f"gs://{bucket.name}/{GOLDEN_CSV['name']}"


def expected_golden_description(path: str) -> dict:
    return {
        "path": path,
        "id": "11111111-1111-4111-8111-111111111111",
        "hash": "Ba+0Wg==",
        "size": 24,
        "timestamp": "2024-05-06T07:08:09.123456",
        "tags": EXPECTED_TAGS,
        "labels": ["a1", "met-mast", "wind-turbine"],
    }


def test_console_script_text_for_cloud_object(golden_csv, proxy):
    result = run_cli("info", golden_csv, env=proxied_env(proxy))

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    fields = parse_text(result.stdout)
    assert fields == {
        "path": golden_csv,
        "id": "11111111-1111-4111-8111-111111111111",
        "hash": "Ba+0Wg==",
        "size": "24",
        "timestamp": "2024-05-06T07:08:09.123456",
        "labels": "a1 met-mast wind-turbine",
        "tags": json.dumps(EXPECTED_TAGS),
    }
    # One metadata GET, no download.
    assert proxy.kinds() == ["stat"]


def test_console_script_json_for_cloud_object(golden_csv, proxy):
    result = run_cli("info", golden_csv, "--json", env=proxied_env(proxy))

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == expected_golden_description(golden_csv)
    assert proxy.kinds() == ["stat"]


def test_console_script_endpoint_option(golden_csv, proxy):
    env = {key: value for key, value in os.environ.items() if key != "STORAGE_EMULATOR_HOST"}

    result = run_cli("--endpoint", proxy.url, "info", "--json", golden_csv, env=env)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["id"] == "11111111-1111-4111-8111-111111111111"
    assert proxy.kinds() == ["stat"]


def test_console_script_version():
    result = run_cli("--version")

    assert result.returncode == 0
    assert result.stdout.strip() == f"octuefs {octuefs.__version__}"
    assert octuefs.__version__ != "0.0.0"


def test_console_script_missing_object(bucket, proxy):
    missing = f"gs://{bucket.name}/no/such/object.csv"

    result = run_cli("info", missing, env=proxied_env(proxy))

    assert result.returncode != 0
    assert result.stdout == ""
    assert missing in result.stderr
    assert "Traceback" not in result.stderr


def test_main_json_for_cloud_object(golden_csv, proxy, capsys):
    assert main(["info", "--json", golden_csv]) == 0

    captured = capsys.readouterr()
    assert json.loads(captured.out) == expected_golden_description(golden_csv)
    assert captured.err == ""
    assert proxy.kinds() == ["stat"]


def test_main_object_without_octue_metadata(bucket, proxy, capsys):
    bucket.blob("plain/raw.bin").upload_from_string(b"\x00\x01\x02")
    path = f"gs://{bucket.name}/plain/raw.bin"

    assert main(["info", "--json", path]) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(["info", "--json", path]) == 0
    second = json.loads(capsys.readouterr().out)

    assert first == second
    assert first == {
        "path": path,
        "id": Datafile(path).id,
        "hash": bucket.get_blob("plain/raw.bin").crc32c,
        "size": 3,
        "timestamp": None,
        "tags": {},
        "labels": [],
    }


def test_main_local_file_with_octue_entry(tmp_path, proxy, capsys):
    path = tmp_path / "readings.csv"
    path.write_bytes(CSV)
    Datafile(
        path,
        id="55555555-5555-4555-8555-555555555555",
        timestamp=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        tags={"site": "north", "when": datetime(2024, 1, 1)},
        labels={"Local", "csv"},
    ).update_metadata()
    assert (tmp_path / ".octue").is_file()

    assert main(["info", "--json", str(path)]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "path": str(path),
        "id": "55555555-5555-4555-8555-555555555555",
        "hash": "Ba+0Wg==",
        "size": 24,
        "timestamp": "2024-01-02T03:04:05+00:00",
        "tags": {"site": "north", "when": {"_type": "datetime", "value": "2024-01-01T00:00:00"}},
        "labels": ["csv", "local"],
    }
    assert main(["info", str(path)]) == 0
    fields = parse_text(capsys.readouterr().out)
    assert (fields["id"], fields["labels"], fields["size"]) == (
        "55555555-5555-4555-8555-555555555555",
        "csv local",
        "24",
    )
    assert proxy.kinds() == []


def test_main_relative_local_path(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("notes.txt").write_text("hello")

    assert main(["info", "--json", "notes.txt"]) == 0

    description = json.loads(capsys.readouterr().out)
    assert description["path"] == str(tmp_path / "notes.txt")
    assert description["size"] == 5


@pytest.mark.parametrize("name", ["no/such/object.csv", "tables/readings.csv.bak"])
def test_main_missing_object_exits_non_zero(golden_csv, bucket, capsys, name):
    missing = f"gs://{bucket.name}/{name}"

    assert main(["info", missing]) == 1

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("octuefs: ")
    assert missing in captured.err


def test_main_missing_local_file(tmp_path, capsys):
    missing = tmp_path / "absent.csv"

    assert main(["info", str(missing)]) == 1

    assert str(missing) in capsys.readouterr().err


def test_main_malformed_metadata_warns_naming_the_object_and_shows_the_rest(bucket, capsys):
    blob = bucket.blob("bad.csv")
    blob.metadata = {"octue__tags": '{"Bad Key": 1, "fine": 2}', "octue__labels": '["ok"]'}
    blob.upload_from_string(b"a")
    path = f"gs://{bucket.name}/bad.csv"

    with pytest.warns(MalformedMetadataWarning, match=re.escape(path)) as record:
        assert main(["info", "--json", path]) == 0

    assert "Bad Key" in str(record[0].message)
    shown = json.loads(capsys.readouterr().out)
    assert (shown["tags"], shown["labels"]) == ({"fine": 2}, ["ok"])


def test_main_rejects_a_bucket_without_object_name(bucket, capsys):
    assert main(["info", f"gs://{bucket.name}"]) == 1

    assert f"gs://{bucket.name}" in capsys.readouterr().err
