"""Signed URLs against the real server: made with a service-account key generated here, read with no credentials.

The key is a fresh RSA key written as a service-account file named by GOOGLE_APPLICATION_CREDENTIALS,
the way a user points the Octue SDK (and google-auth) at a key; signing needs no network. The server
does not check signatures, so these tests prove the URL's form, its endpoint, and that everything
octuefs reads through a URL (bytes, metadata from the response headers) is right.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from octuefs import Datafile
from octuefs.exceptions import (
    ChecksumMismatch,
    CloudLocationNotSpecified,
    FileNotFoundException,
    InvalidInputException,
    ReadOnlyResource,
    SigningUnavailable,
)
from tests.integration.datafile_objects import (
    CSV,
    CSV_NAME,
    FOREIGN,
    GOLDEN_CSV,
    GOLDEN_CSV_TAGS,
    assert_is_the_golden_csv,
    crc32c,
    gs,
    put_golden_csv,
)
from tests.support.signing import SERVICE_ACCOUNT


@pytest.fixture
def signed_csv_url(bucket, proxy, signing_key) -> str:
    put_golden_csv(bucket)
    url = Datafile(gs(bucket, CSV_NAME)).generate_signed_url()
    proxy.reset()
    return url


def test_a_signed_url_points_at_the_configured_endpoint_and_reads_the_object(bucket, proxy, signing_key):
    put_golden_csv(bucket)
    datafile = Datafile(gs(bucket, CSV_NAME))
    proxy.reset()

    url = datafile.generate_signed_url()

    assert proxy.kinds() == []  # signing is local
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == proxy.url
    assert parts.path == f"/{bucket.name}/{CSV_NAME}"
    query = parse_qs(parts.query)
    assert query["X-Goog-Algorithm"] == ["GOOG4-RSA-SHA256"]
    assert query["X-Goog-Credential"][0].startswith(f"{SERVICE_ACCOUNT}/")
    assert query["X-Goog-Expires"] == [str(7 * 24 * 3600)]
    assert re.fullmatch(r"[0-9a-f]{512}", query["X-Goog-Signature"][0])
    assert requests.get(url, timeout=10).content == CSV


@pytest.mark.parametrize(
    "expiration, seconds",
    [(timedelta(hours=1), 3600), (timedelta(days=2), 2 * 24 * 3600)],
)
def test_the_expiration_is_a_delay(bucket, proxy, signing_key, expiration, seconds):
    put_golden_csv(bucket)

    url = Datafile(gs(bucket, CSV_NAME)).generate_signed_url(expiration=expiration)

    assert parse_qs(urlsplit(url).query)["X-Goog-Expires"] == [str(seconds)]


def test_the_expiration_can_be_an_instant(bucket, proxy, signing_key):
    put_golden_csv(bucket)

    url = Datafile(gs(bucket, CSV_NAME)).generate_signed_url(expiration=datetime.now(UTC) + timedelta(minutes=30))

    assert 1790 <= int(parse_qs(urlsplit(url).query)["X-Goog-Expires"][0]) <= 1800


def test_a_local_datafile_has_no_url_to_sign(tmp_path, proxy, signing_key):
    local = tmp_path / "readings.csv"
    local.write_bytes(CSV)

    with pytest.raises(CloudLocationNotSpecified, match=r"readings\.csv"):
        Datafile(local).generate_signed_url()


def test_without_signing_credentials_the_error_names_the_object(bucket, proxy, tmp_path, monkeypatch):
    put_golden_csv(bucket)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "no-such-key.json"))

    with pytest.raises(SigningUnavailable, match=re.escape(gs(bucket, CSV_NAME))):
        Datafile(gs(bucket, CSV_NAME)).generate_signed_url()


def test_a_datafile_read_through_a_url_has_the_objects_metadata_and_downloads_nothing(bucket, proxy, signed_csv_url):
    datafile = Datafile(signed_csv_url)

    assert [request.method for request in proxy.requests] == ["HEAD"]
    assert datafile.id == json.loads(GOLDEN_CSV["object_custom_metadata"]["octue__id"])
    assert datafile.tags == GOLDEN_CSV_TAGS
    assert datafile.labels == set(GOLDEN_CSV["given_to_octue"]["labels"])
    assert datafile.timestamp == datetime.fromisoformat(GOLDEN_CSV["given_to_octue"]["timestamp"])
    assert (datafile.name, datafile.extension) == ("readings.csv", "csv")
    assert (datafile.bucket_name, datafile.path_in_bucket) == (bucket.name, CSV_NAME)
    assert datafile.path == datafile.cloud_path == signed_csv_url
    assert datafile.hash_value == datafile.cloud_hash_value == crc32c(CSV)
    assert datafile.size_bytes == len(CSV)
    assert datafile.exists_in_cloud
    assert not datafile.exists_locally
    assert datafile.cloud_stat.metadata["owner"] == FOREIGN["owner"]
    assert len(proxy.requests) == 1


def test_reading_through_a_url_open_download_and_local_path(bucket, proxy, signed_csv_url, tmp_path):
    datafile = Datafile(signed_csv_url)

    with datafile.open() as f:
        assert f.read() == CSV.decode()
    assert Path(datafile.local_path).read_bytes() == CSV
    target = tmp_path / "copy" / "readings.csv"
    assert datafile.download(target) == str(target)
    assert target.read_bytes() == CSV

    assert [request.method for request in proxy.requests] == ["HEAD", "GET", "GET"]
    assert all("X-Goog-Signature=" in request.path for request in proxy.requests)


def test_a_corrupted_read_through_a_url_is_refused_and_leaves_nothing(bucket, proxy, signed_csv_url, tmp_path):
    datafile = Datafile(signed_csv_url)
    proxy.corrupt("GET", "X-Goog-Signature")
    target = tmp_path / "copy" / "readings.csv"

    with pytest.raises(ChecksumMismatch, match=re.escape(gs(bucket, CSV_NAME))):
        datafile.download(target)

    assert list(target.parent.iterdir()) == []
    assert not datafile.exists_locally


@pytest.mark.parametrize("mode", ["w", "a", "r+", "x"])
def test_a_datafile_read_through_a_url_cannot_be_written(bucket, proxy, signed_csv_url, mode):
    datafile = Datafile(signed_csv_url)

    with pytest.raises(ReadOnlyResource, match="mode"), datafile.open(mode) as f:
        f.write("changed")

    datafile.tags["changed"] = True
    with pytest.raises(ReadOnlyResource):
        datafile.update_metadata()
    with pytest.raises(ReadOnlyResource):
        datafile.upload()
    assert bucket.get_blob(CSV_NAME).download_as_bytes() == CSV
    assert "changed" not in bucket.get_blob(CSV_NAME).metadata["octue__tags"]


def test_a_url_to_a_missing_object_reads_as_missing(bucket, proxy, signing_key):
    url = Datafile(gs(bucket, "missing.csv")).generate_signed_url()

    datafile = Datafile(url)

    assert datafile.cloud_hash_value is None
    with pytest.raises(FileNotFoundException, match=r"missing\.csv"), datafile.open() as f:
        f.read()


@pytest.mark.parametrize("path", ["s3://bucket/readings.csv", "file:///tmp/readings.csv", "ftp://host/readings.csv"])
def test_an_unsupported_scheme_is_refused_not_taken_for_a_local_path(proxy, path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    with pytest.raises(InvalidInputException, match=re.escape(path)):
        Datafile(path)

    assert list(tmp_path.iterdir()) == []
    assert proxy.kinds() == []


@pytest.mark.parametrize("status", [403, 405])
def test_a_url_that_refuses_head_is_read_with_a_ranged_get(bucket, proxy, signed_csv_url, status):
    proxy.inject("HEAD", "X-Goog-Signature", status)

    datafile = Datafile(signed_csv_url)

    assert [(request.method, request.range) for request in proxy.requests] == [("HEAD", None), ("GET", "bytes=0-0")]
    assert datafile.size_bytes == len(CSV)
    assert datafile.hash_value == crc32c(CSV)
    assert_is_the_golden_csv(datafile)


def test_the_signing_key_is_loaded_once_not_per_url(bucket, proxy, signing_key):
    """Parsing a key costs ~25 ms: a dataset of thousands of files must not pay it per file."""
    put_golden_csv(bucket)
    datafile = Datafile(gs(bucket, CSV_NAME))
    first = datafile.generate_signed_url()
    signing_key.write_text("not a key any more")

    second = datafile.generate_signed_url()

    assert parse_qs(urlsplit(second).query)["X-Goog-Credential"] == parse_qs(urlsplit(first).query)["X-Goog-Credential"]
    assert requests.get(second, timeout=10).content == CSV
