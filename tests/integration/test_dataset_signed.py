"""`Dataset.generate_signed_url()` and `Dataset("https://...")`, as Octue 0.69 makes and reads them.

Octue uploads the dataset's primitive, with a signed URL in place of each file's path, to
`<prefix>/.signed_metadata_files/<name>` and returns a signed URL to that document; whoever has
the URL reads the dataset (metadata, files, content) with no credentials. The signing key is the
one `test_signed_urls` generates; the server does not check signatures.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from octuefs import Dataset
from octuefs.exceptions import CloudLocationNotSpecified, FileNotFoundException, ReadOnlyResource
from octuefs.metadata.codec import encode_cloud
from octuefs.metadata.model import OctueMetadata
from tests.integration.datafile_objects import gs, put

FILES = {
    "a.csv": (b"a\n", {"run": 1}, {"raw"}),
    "sub/b.csv": (b"b,b\n", {"run": 2}, {"clean"}),
    "sub/deeper/c.txt": (b"c", {}, set()),
}
DATASET_ID = "66666666-6666-4666-8666-666666666666"


@pytest.fixture
def cloud_dataset(bucket, proxy) -> Dataset:
    for name, (content, tags, labels) in FILES.items():
        put(bucket, f"campaign/{name}", content, metadata=encode_cloud(OctueMetadata.build(tags=tags, labels=labels)))
    dataset = Dataset(gs(bucket, "campaign"), id=DATASET_ID, tags={"site": "north"}, labels={"shared"})
    dataset.update_metadata()
    return dataset


@pytest.mark.usefixtures("signing_key")
def test_generate_signed_url_uploads_octues_signed_document(cloud_dataset, bucket, proxy):
    proxy.reset()

    url = cloud_dataset.generate_signed_url()

    # Signing is local: the only request is the document's upload.
    assert proxy.kinds() == ["upload"]
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == proxy.url
    assert parse_qs(parts.query)["X-Goog-Expires"] == [str(7 * 24 * 3600)]
    (document,) = bucket.list_blobs(prefix="campaign/.signed_metadata_files/")
    assert parts.path == f"/{bucket.name}/{document.name}"
    text = document.download_as_text()
    signed = json.loads(text)
    # `json.dumps(signed_metadata, cls=OctueJSONEncoder)`: default separators, to_primitive's key order.
    assert text == json.dumps(signed)
    assert list(signed) == ["id", "name", "tags", "labels", "path", "files"]
    assert (signed["id"], signed["name"], signed["tags"], signed["labels"]) == (
        DATASET_ID,
        "campaign",
        {"site": "north"},
        ["shared"],
    )
    assert signed["path"] == gs(bucket, "campaign")
    assert [urlsplit(file).path for file in signed["files"]] == [f"/{bucket.name}/campaign/{name}" for name in FILES]
    assert all("X-Goog-Signature" in file for file in signed["files"])
    # The document is Octue's bookkeeping, never one of the dataset's files.
    assert len(Dataset(gs(bucket, "campaign"))) == len(FILES)


@pytest.mark.usefixtures("signing_key")
def test_a_dataset_read_through_its_signed_url(cloud_dataset, bucket, proxy, tmp_path):
    url = cloud_dataset.generate_signed_url()
    proxy.reset()

    dataset = Dataset(url)

    # One HEAD and GET for the document, one HEAD per file; nothing listed, no credentials used.
    assert sorted(request.method for request in proxy.requests) == ["GET", *["HEAD"] * (1 + len(FILES))]
    assert all("X-Goog-Signature=" in request.path for request in proxy.requests)
    assert (dataset.id, dataset.name, dataset.tags, dataset.labels) == (
        DATASET_ID,
        "campaign",
        {"site": "north"},
        {"shared"},
    )
    assert dataset.path == url and dataset.metadata_path == url
    assert dataset.exists_in_cloud and not dataset.exists_locally
    assert (dataset.bucket_name, dataset.path_in_bucket) == (bucket.name, "campaign")
    assert {datafile.path_in_bucket: (datafile.tags, datafile.labels) for datafile in dataset.files} == {
        f"campaign/{name}": (tags, labels) for name, (_, tags, labels) in FILES.items()
    }
    assert dataset.files.one(labels__contains="clean").name == "b.csv"
    assert dataset.hash_value == cloud_dataset.hash_value

    directory = Path(dataset.download(tmp_path / "copy"))

    assert {name: (directory / name).read_bytes() for name in FILES} == {
        name: content for name, (content, _, _) in FILES.items()
    }


@pytest.mark.usefixtures("signing_key")
def test_a_signed_dataset_is_read_only(cloud_dataset, bucket):
    dataset = Dataset(cloud_dataset.generate_signed_url())
    before = bucket.get_blob("campaign/.octue").generation

    dataset.labels.add("changed")
    for attempt in (dataset.update_metadata, dataset.upload, dataset.generate_signed_url):
        with pytest.raises(ReadOnlyResource, match="signed URL"):
            attempt()
    with pytest.raises(ReadOnlyResource):
        dataset.add(cloud_dataset.files.one(name="a.csv"))
    with pytest.raises(ReadOnlyResource), dataset:
        pass

    assert bucket.get_blob("campaign/.octue").generation == before


@pytest.mark.usefixtures("signing_key")
def test_a_signed_dataset_at_a_bucket_root(bucket):
    put(bucket, "top.csv", b"top")
    root = Dataset(f"gs://{bucket.name}")

    dataset = Dataset(root.generate_signed_url())

    assert [datafile.path_in_bucket for datafile in dataset.files] == ["top.csv"]
    assert (dataset.name, dataset.path_in_bucket) == (bucket.name, "")


def test_a_local_dataset_cannot_be_signed(tmp_path):
    with pytest.raises(CloudLocationNotSpecified, match="not in the cloud"):
        Dataset(tmp_path).generate_signed_url()


@pytest.mark.usefixtures("signing_key")
def test_a_url_to_nothing_is_an_error_not_an_empty_dataset(bucket):
    """Octue logs the failure and goes on with an empty dataset; here the missing document is an error."""
    url = Dataset(gs(bucket, "campaign")).generate_signed_url()
    bucket.delete_blob(urlsplit(url).path.split("/", 2)[2])

    with pytest.raises(FileNotFoundException, match="signed_metadata_files"):
        Dataset(url)
