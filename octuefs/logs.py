"""Log records as text for people or as one JSON object a line for log pipelines (`--log-format json`).

The per-operation debug lines (FUSE operations, storage requests) carry their facts as record
attributes (`op`, `object`, `outcome`, `ms`), so a JSON line can be filtered by field instead of
parsed back out of a sentence. Nothing logged holds credentials: requests are named by object and
action, never by URL or header.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

TEXT_FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"
LOG_FORMATS = ("text", "json")
# C0 controls and DEL: what json.dumps escapes (as \n, \t, \u001b) and a terminal would act on.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Attributes every LogRecord has; anything else on a record came from `extra=` and is a field.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        entry.update({key: value for key, value in vars(record).items() if key not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Messages carry object names, which are any text a bucket writer chose: raw, an escape sequence
    would drive the terminal of whoever reads the log and a line break would forge a log line. Control
    characters are escaped as the JSON log escapes them; tracebacks, added after, keep their lines."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        return _CONTROL.sub(_escape, super().formatMessage(record))


def _escape(match: re.Match[str]) -> str:
    return json.dumps(match.group())[1:-1]


def formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter()
