"""CSV and Parquet exports of warehouse tables, written atomically.

Each table becomes ``<folder>/<schema>.<table>.csv`` (UTF-8, header row, comma-delimited,
ISO dates, money as plain decimals such as ``12.30``, text that a spreadsheet would run as a
formula prefixed with an apostrophe) and ``<folder>/<schema>.<table>.parquet`` (values as they are).
Both are written by DuckDB to a hidden temporary name in the same folder and then moved into
place with ``os.replace``, so a reader sees either the previous file or the complete new one.

Only tables that exist in the schemas raw, marts, ml and ops can be exported; the name is
checked against ``duckdb_tables()`` before it is used in SQL. ``where_sql`` is a filter written
by the calling code (not by end users) and takes its values through ``params``.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable, Sequence

import duckdb

from salesflow.formula_cells import neutralise_sql

EXPORTABLE_SCHEMAS = ("raw", "marts", "ml", "ops")


class ExportError(ValueError):
    """The table cannot be exported (unknown, outside the exportable schemas, bad filter)."""


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _existing_tables(con: duckdb.DuckDBPyConnection, schema: str | None = None) -> list[tuple[str, str]]:
    rows = con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() "
        "WHERE database_name = current_database() AND NOT temporary "
        "AND list_contains($1, schema_name) ORDER BY 1, 2",
        [list(EXPORTABLE_SCHEMAS) if schema is None else [schema]],
    ).fetchall()
    return [(s, t) for s, t in rows]


def resolve_table(con: duckdb.DuckDBPyConnection, table: str) -> tuple[str, str]:
    """``schema.table`` as it exists in the warehouse, or ExportError."""
    if not isinstance(table, str) or table.count(".") != 1:
        raise ExportError(f"expected a table name as schema.table, got {table!r}")
    schema, name = table.split(".")
    if schema not in EXPORTABLE_SCHEMAS:
        raise ExportError(f"only tables in {', '.join(EXPORTABLE_SCHEMAS)} can be exported, "
                          f"not {table!r}")
    if (schema, name) not in _existing_tables(con, schema):
        raise ExportError(f"no table {table!r} in the warehouse")
    return schema, name


def _csv_safe_query(con: duckdb.DuckDBPyConnection, query: str, params: Sequence | None) -> str:
    """``query`` with every text column neutralised (see salesflow.formula_cells); numbers,
    dates and other typed columns are left as they are."""
    columns = con.execute(f"DESCRIBE {query}", list(params) if params else None).fetchall()
    select = ", ".join(
        neutralise_sql(_quote_ident(name)) + " AS " + _quote_ident(name)
        if kind == "VARCHAR" or kind.startswith("ENUM") else _quote_ident(name)
        for name, kind, *_ in columns
    )
    return f"SELECT {select} FROM ({query})"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(target: Path, render: Callable[[Path], None]) -> None:
    """``render`` writes a temporary file beside ``target``, which then replaces ``target`` in
    one step (after an fsync): a reader sees the old file or the new one, never half of one."""
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        render(tmp)
        _fsync(tmp)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def _copy_atomically(con: duckdb.DuckDBPyConnection, query: str, options: str, target: Path,
                     params: Sequence | None) -> None:
    write_atomically(target, lambda tmp: con.execute(
        f"COPY ({query}) TO {_quote_literal(str(tmp))} ({options})", list(params) if params else None))


def export_table(
    con: duckdb.DuckDBPyConnection,
    table: str,
    folder: Path,
    *,
    where_sql: str | None = None,
    params: Sequence | None = None,
) -> tuple[Path, Path]:
    """Write ``table`` (``schema.table``), optionally filtered, as CSV and Parquet into
    ``folder``; returns the two paths."""
    schema, name = resolve_table(con, table)
    if where_sql is not None and ";" in where_sql:
        raise ExportError("where_sql must be a single condition")
    if params and where_sql is None:
        raise ExportError("params given without where_sql")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    query = f"SELECT * FROM {_quote_ident(schema)}.{_quote_ident(name)}"
    if where_sql is not None:
        query += f" WHERE {where_sql}"
    csv_path = folder / f"{schema}.{name}.csv"
    parquet_path = folder / f"{schema}.{name}.parquet"
    _copy_atomically(con, _csv_safe_query(con, query, params), "FORMAT csv, HEADER, DELIMITER ','",
                     csv_path, params)
    _copy_atomically(con, query, "FORMAT parquet", parquet_path, params)
    return csv_path, parquet_path


def export_marts(con: duckdb.DuckDBPyConnection, folder: Path) -> list[Path]:
    """Export every ``marts.*`` table; returns the written files, CSV then Parquet per table."""
    paths: list[Path] = []
    for schema, name in _existing_tables(con, "marts"):
        paths.extend(export_table(con, f"{schema}.{name}", folder))
    return paths
