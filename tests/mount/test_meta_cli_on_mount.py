"""`octuefs meta get|set` on a file of a mount goes through its xattrs, so the mount's view stays current."""

from __future__ import annotations

import json
import sys

import pytest

from octuefs.metadata.codec import encode_cloud
from octuefs.metadata.model import OctueMetadata
from tests.mount.conftest import run

pytestmark = pytest.mark.timeout(60)

ID = "11111111-1111-4111-8111-111111111111"


def test_meta_set_and_get_on_a_mounted_file(mount, bucket, proxy):
    blob = bucket.blob("data/readings.csv")
    blob.metadata = {**encode_cloud(OctueMetadata.build(id=ID, tags={"site": "a"}, labels=["raw"])), "owner": "alice"}
    blob.upload_from_string(b"t,v\n", content_type="text/csv")
    generation = bucket.get_blob("data/readings.csv").generation
    mounted = mount()
    path = mounted / "data/readings.csv"
    cli = (sys.executable, "-m", "octuefs.cli.main", "meta")

    changed = run(*cli, "set", path, "--tag", "height=350", "--label", "Checked", "--remove-label", "raw")
    assert changed.returncode == 0, changed.stderr
    shown = run(*cli, "get", path, "--json")
    assert shown.returncode == 0, shown.stderr

    described = json.loads(shown.stdout)
    assert described["path"] == f"gs://{bucket.name}/data/readings.csv"
    assert described["id"] == ID and described["tags"] == {"site": "a", "height": 350}
    assert described["labels"] == ["checked"] and described["size"] == 4
    after = bucket.get_blob("data/readings.csv")
    assert json.loads(after.metadata["octue__tags"]) == {"site": "a", "height": 350}
    assert json.loads(after.metadata["octue__labels"])["items"] == ["checked"]
    assert after.metadata["owner"] == "alice" and after.generation == generation
    assert mounted.sh("getfattr", "-n", "user.octue.labels", "--only-values", path).stdout == b"checked"
