"""Shared test data: the fixture directory, and Master.csv rows turned into `cdr` table rows."""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path
from typing import Any

from probes.calllogs.asterisk_csv import BASE_COLUMNS

DATA = Path(__file__).resolve().parents[2] / "data" / "cdr"
NEW_COLUMNS = ("uniqueid", "userfield", "peeraccount", "linkedid", "sequence")


def table_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a 21-column Master.csv as Asterisk's SQL backends would have inserted them."""
    with open(path, newline="", encoding="utf-8") as handle:
        return [table_row(fields) for fields in csv.reader(handle)]


def insertable_rows(path: Path) -> dict[int, dict[str, Any]]:
    """{line number: table row} for the lines of a Master.csv that a database could hold at all."""
    rows = {}
    for line_no, line in enumerate(path.read_bytes().splitlines(), 1):
        try:
            rows[line_no] = table_row(next(csv.reader([line.decode("utf-8")])))
        except (ValueError, UnicodeDecodeError):
            continue  # cut short, impossible date, invalid bytes: no database would have stored it
    return rows


def table_row(fields: list[str]) -> dict[str, Any]:
    row: dict[str, Any] = dict(zip(BASE_COLUMNS + NEW_COLUMNS, fields, strict=True))
    for name in ("start", "answer", "end"):
        row[name] = datetime.fromisoformat(row[name]) if row[name] else None
    for name in ("duration", "billsec", "sequence"):
        row[name] = int(row[name])
    return row
