"""The text log escapes control characters in messages (object names), as the JSON log does."""

from __future__ import annotations

import logging
import sys

from octuefs.logs import formatter


def record(message: str, *args: object, exc_info: object = None) -> logging.LogRecord:
    return logging.LogRecord("octuefs.test", logging.WARNING, __file__, 1, message, args, exc_info)


def test_control_characters_in_a_message_are_escaped_as_json_escapes_them():
    line = formatter("text").format(record("%s: uploaded", "gs://b/a\nFAKE\x1b[31m\x7f"))
    assert line.endswith("gs://b/a\\nFAKE\\u001b[31m\\u007f: uploaded")
    assert "\n" not in line and "\x1b" not in line


def test_a_traceback_keeps_its_lines():
    try:
        raise ValueError("boom")
    except ValueError:
        line = formatter("text").format(record("failed on %s", "x\ty", exc_info=sys.exc_info()))
    first, *rest = line.split("\n")
    assert first.endswith("failed on x\\ty")
    assert rest[0] == "Traceback (most recent call last):" and rest[-1] == "ValueError: boom"
