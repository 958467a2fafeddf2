"""`dataset.files.filter(...)` with Octue's lookups, on datasets read from the real server and from a folder.

Filtering works on what the listing already returned: no request is made while filtering.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from octuefs import Datafile, Dataset
from octuefs.errors import InvalidInputException, UnexpectedNumberOfResultsException
from octuefs.filters import FilterList, FilterSet
from octuefs.metadata.codec import encode_cloud
from octuefs.metadata.model import OctueMetadata
from tests.integration.datafile_objects import put

# name -> (content, timestamp, tags, labels)
FILES = {
    "turbines/vestas-v90.csv": (
        b"v90\n",
        datetime(2024, 5, 6, tzinfo=UTC),
        {"manufacturer": "Vestas", "height": 80},
        {"turbine", "onshore"},
    ),
    "turbines/enercon-e126.csv": (
        b"e126,big\n",
        datetime(2023, 1, 2, tzinfo=UTC),
        {"manufacturer": "Enercon", "height": 135},
        {"turbine", "offshore"},
    ),
    "met/mast.json": (b"{}", None, {"height": 100}, {"met-mast"}),
    "notes.txt": (b"", None, {}, set()),
}


@pytest.fixture
def cloud_dataset(bucket, proxy) -> Dataset:
    for name, (content, timestamp, tags, labels) in FILES.items():
        metadata = encode_cloud(OctueMetadata.build(timestamp=timestamp, tags=tags, labels=labels))
        put(bucket, f"site/{name}", content, metadata=metadata if tags or labels else None)
    dataset = Dataset(f"gs://{bucket.name}/site")
    proxy.reset()
    return dataset


@pytest.fixture
def local_dataset(tmp_path) -> Dataset:
    for name, (content, timestamp, tags, labels) in FILES.items():
        (tmp_path / "site" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "site" / name).write_bytes(content)
        Datafile(tmp_path / "site" / name, timestamp=timestamp, tags=tags, labels=labels).update_metadata()
    return Dataset(tmp_path / "site")


@pytest.fixture(params=["cloud", "local"])
def dataset(request) -> Dataset:
    return request.getfixturevalue(f"{request.param}_dataset")


def names(files) -> list[str]:
    return [datafile.name for datafile in files]


def found(files) -> set[str]:
    return set(names(files))


def test_lookups_on_every_kind_of_attribute(dataset):
    files = dataset.files

    assert isinstance(files, FilterSet) and len(files) == 4
    assert found(files.filter(name__ends_with=".csv")) == {"enercon-e126.csv", "vestas-v90.csv"}
    assert found(files.filter(name__icontains="V90")) == {"vestas-v90.csv"}
    assert found(files.filter(extension="json")) == {"mast.json"}
    assert found(files.filter(tags__height__gt=90)) == {"enercon-e126.csv", "mast.json"}
    assert found(files.filter(tags__manufacturer="Vestas")) == {"vestas-v90.csv"}
    assert found(files.filter(tags__manufacturer__in_range=("A", "F"))) == {"enercon-e126.csv"}
    assert found(files.filter(labels__contains="turbine")) == {"enercon-e126.csv", "vestas-v90.csv"}
    assert found(files.filter(labels__any_label_ends_with="shore")) == {"enercon-e126.csv", "vestas-v90.csv"}
    assert found(files.filter(labels__equals=set())) == {"notes.txt"}
    assert found(files.filter(size_bytes__lte=2)) == {"mast.json", "notes.txt"}
    assert found(files.filter(timestamp__is=None)) == {"mast.json", "notes.txt"}
    # A datetime lookup meets a file without a timestamp (None) only if an earlier lookup let it through.
    assert found(files.filter(timestamp__is_not=None, timestamp__year_equals=2024)) == {"vestas-v90.csv"}
    with pytest.raises(InvalidInputException):
        files.filter(timestamp__year_equals=2024)


def test_chaining_one_and_order_by(dataset):
    files = dataset.files

    assert files.filter(labels__contains="turbine").filter(tags__height__lt=100).one().name == "vestas-v90.csv"
    assert files.one(labels__contains="met-mast").name == "mast.json"
    assert dataset.get_file_by_label("offshore").name == "enercon-e126.csv"
    with pytest.raises(UnexpectedNumberOfResultsException, match="2 results"):
        dataset.get_file_by_label("turbine")
    ordered = files.filter(tags__height__gte=0).order_by("tags__height", reverse=True)
    assert isinstance(ordered, FilterList)
    assert names(ordered) == ["enercon-e126.csv", "mast.json", "vestas-v90.csv"]
    assert names(files.order_by("size_bytes")) == ["notes.txt", "mast.json", "vestas-v90.csv", "enercon-e126.csv"]
    with pytest.raises(InvalidInputException, match="does not exist"):
        files.order_by("tags__height")


def test_membership_iteration_and_the_octuefs_shorthand(dataset):
    mast = dataset.files.one(name="mast.json")

    assert mast in dataset and mast in dataset.files
    assert Datafile(mast.local_path) not in dataset
    assert [datafile.name for datafile in dataset] == names(dataset.files)
    assert len(dataset) == 4
    # octuefs's `Dataset.filter(predicate, labels, tags)` is kept, and returns a FilterSet too.
    assert found(dataset.filter(labels={"turbine"}, tags={"height": 80})) == {"vestas-v90.csv"}
    assert found(dataset.filter(lambda datafile: datafile.extension == "txt").filter(size_bytes=0)) == {"notes.txt"}


def test_filtering_a_cloud_dataset_makes_no_request(cloud_dataset, proxy):
    cloud_dataset.files.filter(tags__height__gt=90, labels__contains="turbine").one()
    cloud_dataset.files.order_by("name")

    assert proxy.kinds() == []


def test_a_datafile_satisfies_one_lookup_as_octues_filterable_does(dataset, proxy):
    vestas = dataset.files.one(name="vestas-v90.csv")
    proxy.reset()

    assert vestas.satisfies(tags__height__lt=100)
    assert vestas.satisfies(labels__contains="onshore")
    assert vestas.satisfies(extension="csv")
    assert not vestas.satisfies(tags__manufacturer__starts_with="E")
    assert not vestas.satisfies(raise_error_if_filter_is_invalid=False, tags__rating__gt=2)
    with pytest.raises(AttributeError):
        vestas.satisfies(tags__rating__gt=2)
    # Octue raises ValueError; octuefs's typed error is one, and names the datafile.
    with pytest.raises(InvalidInputException, match=r"vestas-v90\.csv.*exactly one") as raised:
        vestas.satisfies(name="a", extension="b")
    assert isinstance(raised.value, ValueError)
    kept = [datafile for datafile in dataset.files if datafile.satisfies(False, tags__height__gte=100)]
    assert names(kept) == names(dataset.files.filter(tags__height__gte=100))
    assert proxy.kinds() == []


def test_files_have_the_named_set_methods_octue_code_calls_on_a_set(dataset):
    """Octue's FilterSet is a `set`, so Octue code may call `union`, `issubset`, ... on `dataset.files`."""

    def sorted_names(files) -> list[str]:
        return sorted(names(files))

    turbines = dataset.files.filter(labels__contains="turbine")
    tall = dataset.files.filter(tags__height__gte=100)
    tall_list = list(tall)

    assert (
        sorted_names(turbines.union(tall_list))
        == sorted_names(turbines | tall)
        == ["enercon-e126.csv", "mast.json", "vestas-v90.csv"]
    )
    assert sorted_names(turbines.intersection(tall_list)) == sorted_names(turbines & tall) == ["enercon-e126.csv"]
    assert sorted_names(turbines.difference(tall_list)) == sorted_names(turbines - tall) == ["vestas-v90.csv"]
    assert sorted_names(turbines.symmetric_difference(tall_list)) == ["mast.json", "vestas-v90.csv"]
    assert sorted_names(dataset.files.union()) == sorted_names(dataset.files)
    assert sorted_names(dataset.files.intersection(turbines, tall_list)) == ["enercon-e126.csv"]
    assert sorted_names(dataset.files.difference(turbines, tall_list)) == ["notes.txt"]
    assert turbines.issubset(list(dataset.files)) and not turbines.issubset(tall_list)
    assert dataset.files.issuperset(tall_list) and not tall.issuperset(turbines)
    assert isinstance(turbines.union(tall_list), FilterSet)
    assert sorted_names(turbines.union(tall_list).filter(name__starts_with="m")) == ["mast.json"]

    copy = dataset.files.copy()
    copy.intersection_update(tall_list)
    assert sorted_names(copy) == sorted_names(tall)
    copy.difference_update(turbines)
    assert sorted_names(copy) == ["mast.json"]
    copy.symmetric_difference_update(turbines)
    assert sorted_names(copy) == ["enercon-e126.csv", "mast.json", "vestas-v90.csv"]


def test_octues_keyword_names_are_accepted(dataset):
    """Octue code may pass these arguments by name: the names are Octue's."""
    vestas = dataset.files.one(name="vestas-v90.csv")

    assert vestas.labels.any_label_starts_with(value="on")
    assert vestas.labels.any_label_ends_with(value="shore")
    assert not vestas.labels.any_label_contains(value="mast")
    assert Datafile.deserialise(serialised_datafile=vestas.serialise(), from_string=True).tags == vestas.tags
