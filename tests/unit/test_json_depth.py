"""The codec's bound on JSON nesting: values another writer stored nested deeper than MAX_JSON_DEPTH
are refused before anything recurses into them, and everything up to the bound still reads."""

from __future__ import annotations

import json
import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st

from octuefs.errors import MalformedMetadataError, MalformedMetadataWarning, MetadataTooDeepError
from octuefs.metadata import codec
from octuefs.metadata.local_store import LocalMetadataStore
from octuefs.metadata.values import MAX_JSON_DEPTH, json_depth, load_json_of_type, loads, parse_json

SOURCE = "gs://bucket/deep.csv"


def nested(depth: int, inner: str = "1") -> str:
    """`depth` arrays inside one another, built as text: json.dumps would itself recurse that deep."""
    return "[" * depth + inner + "]" * depth


def test_values_up_to_the_bound_read_and_one_level_more_is_refused() -> None:
    assert json_depth(nested(MAX_JSON_DEPTH)) == MAX_JSON_DEPTH
    assert loads(nested(MAX_JSON_DEPTH)) is not None
    with pytest.raises(MetadataTooDeepError, match=f"{MAX_JSON_DEPTH + 1} levels deep"):
        loads(nested(MAX_JSON_DEPTH + 1))


def test_brackets_inside_strings_do_not_count_and_escaped_quotes_do_not_end_a_string() -> None:
    text = json.dumps({"a": "[" * 500 + '\\" {{{' + "]" * 3, "b": [[1]]})
    assert json_depth(text) == 3
    assert loads(text)["b"] == [[1]]


@given(st.recursive(st.integers() | st.text(), lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner)))
def test_depth_of_any_value_is_how_deep_its_containers_nest(value: object) -> None:
    def depth(item: object) -> int:
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        return 0 if children is None else 1 + max((depth(child) for child in children), default=0)

    assert json_depth(json.dumps(value)) == depth(value)


def test_stored_tags_nested_too_deep_are_read_as_none_with_one_warning_naming_object_and_field() -> None:
    custom = {"octue__tags": '{"deep": ' + nested(990) + "}", "octue__labels": '["kept"]'}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        decoded = codec.decode_cloud(custom, SOURCE)
    messages = [str(warning.message) for warning in caught if warning.category is MalformedMetadataWarning]
    assert len(messages) == 1 and messages[0].startswith(f"{SOURCE}: stored tags") and "levels deep" in messages[0]
    assert len(messages[0]) < 300
    assert "tags" not in decoded and decoded["labels"] == {"kept"}


def test_a_too_deep_label_value_is_not_taken_for_a_word() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        decoded = codec.decode_cloud({"octue__labels": nested(990, '"x"')}, SOURCE)
    assert "labels" not in decoded and len(caught) == 1


def test_documents_too_deep_raise_the_callers_error(tmp_path) -> None:
    with pytest.raises(MalformedMetadataError, match="levels deep"):
        load_json_of_type(nested(5000), list, MalformedMetadataError, "document")
    with pytest.raises(ValueError, match="levels deep"):
        parse_json(nested(5000).encode(), "document")
    (tmp_path / ".octue").write_text('{"datafiles": ' + nested(990) + "}")
    with pytest.raises(MalformedMetadataError, match="levels deep"):
        LocalMetadataStore(tmp_path).read()
