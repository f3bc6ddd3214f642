"""Read local csv / json / jsonl / parquet files into rows, without the ``datasets`` library.

Rows are ``dict[column, value]``. CSV columns are typed the way ``datasets`` (via pandas) types them: a
column whose every non-empty cell is an integer becomes ``int``, else ``float`` if they all parse as
numbers, else ``str``; empty cells become ``None``.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from olivine.errors import DataError, MissingDependencyError

Row = dict[str, Any]

TABLE_FORMATS = ("csv", "json", "parquet")

_SPLIT = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)(?:\[(?P<start>-?\d+%?)?:(?P<stop>-?\d+%?)?\])?$")


def read_rows(fmt: str, files: Sequence[Path], *, field: str | None = None) -> list[Row]:
    """All rows of ``files`` (in order) read as ``fmt`` (``csv``, ``json`` or ``parquet``)."""
    rows: list[Row] = []
    for path in files:
        try:
            if fmt == "csv":
                rows.extend(_read_csv(path))
            elif fmt == "json":
                rows.extend(_read_json(path, field))
            elif fmt == "parquet":
                rows.extend(_read_parquet(path))
            else:
                raise DataError(f"unknown table format '{fmt}'; allowed: {', '.join(TABLE_FORMATS)}")
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise DataError(f"cannot read {path} as {fmt}: {exc}") from exc
    return rows


def parse_split(split: str) -> tuple[str, str | None, str | None]:
    """``"train[10:20%]"`` -> ``("train", "10", "20%")``; raises ValueError for other shapes."""
    match = _SPLIT.match(split.strip())
    if not match:
        raise ValueError(f"split '{split}' must look like 'train', 'train[:100]' or 'train[80%:]'")
    return match["name"], match["start"], match["stop"]


def slice_rows(rows: list[Row], start: str | None, stop: str | None) -> list[Row]:
    """Apply a split slice; percentages are of the split's row count (rounded down)."""

    def bound(text: str | None) -> int | None:
        if text is None:
            return None
        if text.endswith("%"):
            return int(len(rows) * int(text[:-1]) / 100)
        return int(text)

    return rows[bound(start) : bound(stop)]


def _read_csv(path: Path) -> list[Row]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        raw = list(reader)
        columns = list(reader.fieldnames or [])
    converters = {col: _column_type([r.get(col) for r in raw]) for col in columns}
    return [{col: converters[col](r.get(col)) for col in columns} for r in raw]


def _column_type(cells: list[str | None]) -> Any:
    present = [c for c in cells if c not in (None, "")]

    def parses(kind: type) -> bool:
        try:
            for cell in present:
                kind(cell)
        except ValueError:
            return False
        return True

    def optional(kind: Any) -> Any:
        return lambda cell: None if cell in (None, "") else kind(cell)

    if present and parses(int):
        return optional(int)
    if present and parses(float):
        return optional(float)
    return lambda cell: None if cell is None else cell


def _read_json(path: Path, field: str | None) -> list[Row]:
    text = path.read_text(encoding="utf-8")
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError:
        # JSON Lines: one object per line.
        try:
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise DataError(f"{path} is neither JSON nor JSON Lines: {exc}") from exc
    if field is not None:
        if not isinstance(data, dict) or field not in data:
            raise DataError(f"{path} has no top-level field '{field}'")
        data = data[field]
    if isinstance(data, list):
        if not all(isinstance(r, dict) for r in data):
            raise DataError(f"{path}: expected a list of objects (one per row)")
        return data
    if isinstance(data, dict) and data and all(isinstance(v, list) for v in data.values()):
        # Column-oriented: {"text": [...], "label": [...]}.
        lengths = {len(v) for v in data.values()}
        if len(lengths) != 1:
            raise DataError(f"{path}: columns have different lengths {sorted(lengths)}")
        return [dict(zip(data, values, strict=True)) for values in zip(*data.values(), strict=True)]
    if isinstance(data, dict):
        return [data]
    raise DataError(f"{path}: expected rows as a JSON list, JSON Lines or a mapping of columns")


def _read_parquet(path: Path) -> list[Row]:
    try:
        import pyarrow.parquet as pq
    except ModuleNotFoundError as exc:
        raise MissingDependencyError(
            "reading parquet files needs pyarrow: pip install 'olivine[parquet]'"
        ) from exc
    try:
        rows: list[Row] = pq.read_table(path).to_pylist()
    except Exception as exc:  # pyarrow's ArrowInvalid and friends share no importable base here
        raise DataError(f"cannot read {path} as parquet: {exc}") from exc
    return rows
