"""The storage boundary holds: both implementations have every call of the interface, with its
signature, and nothing outside octuefs/storage/ reaches into a storage object's private members."""

from __future__ import annotations

import ast
import inspect
import typing
from pathlib import Path

import pytest

from octuefs.storage.gcs import GCSStorage
from octuefs.storage.interface import Storage
from octuefs.storage.memory import MemoryStorage
from octuefs.storage.objects import StorageSettings
from octuefs.storage.streaming import UploadSessions

PACKAGE = Path(__file__).resolve().parents[2] / "octuefs"
STORAGE = PACKAGE / "storage"
# The HTTP stack and the Google client are the storage layer's own.
STORAGE_ONLY_MODULES = ("google.cloud", "google.api_core", "google.auth", "requests")
# Written once in the interface, for every implementation, in terms of its other calls.
SHARED = {"require_stat", "own_lost_upload"}


def interface_methods() -> dict[str, object]:
    methods: dict[str, object] = {}
    for protocol in (UploadSessions, Storage):
        methods.update({name: member for name, member in vars(protocol).items() if inspect.isfunction(member)})
    return {name: member for name, member in methods.items() if not name.startswith("_")}


@pytest.mark.parametrize("implementation", [GCSStorage, MemoryStorage])
def test_each_implementation_has_every_call_with_its_signature(implementation: type) -> None:
    methods = interface_methods()
    assert {"stat", "list", "read_range", "upload", "append", "patch_metadata", "start_upload"} <= methods.keys()
    for name, declared in methods.items():
        own = getattr(implementation, name)
        if name in SHARED:
            assert own is declared
            continue
        assert own is not declared, f"{implementation.__name__}.{name} is missing"
        assert inspect.signature(own) == inspect.signature(declared), f"{implementation.__name__}.{name}"


@pytest.mark.parametrize(
    "build", [lambda: GCSStorage(StorageSettings(endpoint="http://127.0.0.1:9")), MemoryStorage], ids=["gcs", "memory"]
)
def test_each_implementation_has_the_interface_attributes(build) -> None:
    storage = build()
    attributes = typing.get_type_hints(Storage)
    assert attributes.keys() == {"settings", "stats", "health"}
    for name, kind in attributes.items():
        assert isinstance(getattr(storage, name), kind), name


def storage_private_members() -> set[str]:
    """Every private attribute and method the storage layer's classes define."""
    names: set[str] = set()
    for path in STORAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                names.update(item.name for item in node.body if isinstance(item, ast.FunctionDef))
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
                names.add(node.attr)
    return {name for name in names if name.startswith("_") and not name.startswith("__")}


def boundary_violations(source: str, private: set[str]) -> list[str]:
    """Imports of the storage layer's own libraries, and private storage members reached from outside."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = [node.module or ""] if isinstance(node, ast.ImportFrom) else [alias.name for alias in node.names]
            found += [
                f"line {node.lineno}: imports {module}" for module in modules if module.startswith(STORAGE_ONLY_MODULES)
            ]
        if not isinstance(node, ast.Attribute) or node.attr not in private:
            continue
        if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def test_the_check_finds_what_it_looks_for() -> None:
    private = storage_private_members()
    assert {"_request", "_blob", "_retry", "_timeout", "_client"} <= private
    source = "import requests\nstorage._request('x')\nget_storage()._client._http.put(url)\nself._request()\n"
    assert boundary_violations(source, private) == [
        "line 1: imports requests",
        "line 2: storage._request",
        "line 3: get_storage()._client",
    ]


def test_nothing_outside_storage_touches_the_storage_clients_private_members() -> None:
    private = storage_private_members()
    violations = {
        str(path.relative_to(PACKAGE)): found
        for path in sorted(PACKAGE.rglob("*.py"))
        if STORAGE not in path.parents and (found := boundary_violations(path.read_text(), private))
    }
    assert violations == {}
