"""Datafiles as an aligned text table, for people at a terminal."""

from __future__ import annotations

from collections.abc import Iterable

from octuefs.datafile import Datafile


def render_table(datafiles: Iterable[Datafile]) -> str:
    rows = [("NAME", "SIZE", "CRC32C", "TIMESTAMP", "LABELS", "TAGS")]
    for datafile in datafiles:
        rows.append(
            (
                datafile.path_in_bucket or datafile.name,
                str(datafile.size_bytes),
                datafile.hash_value,
                datafile.timestamp.date().isoformat() if datafile.timestamp else "-",
                " ".join(sorted(datafile.labels)) or "-",
                ", ".join(f"{key}={value}" for key, value in datafile.tags.items()) or "-",
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    lines = [
        "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]]) for row in rows
    ]
    return "\n".join(lines)
