"""CSV/Parquet exports: round trip, filters, refused names, atomic replacement."""

from __future__ import annotations

import csv
import os
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from salesflow.exports import ExportError, export_marts, export_table
from salesflow.warehouse import ensure_schema

ROWS = [
    (date(2025, 1, 2), "A-1", "Café, \"special\"", Decimal("12.30"), 3, datetime(2025, 1, 2, 9, 5, 1)),
    (date(2025, 1, 3), "B-2", None, Decimal("-0.05"), None, datetime(2025, 1, 3, 23, 59, 59)),
    (date(2025, 2, 1), "C-3", "Ölkanne", Decimal("1234567.89"), 0, None),
]


@pytest.fixture
def con(tmp_path):
    # a bare warehouse holding only the tables below (connect() would add the contract's)
    c = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        for schema in ("raw", "marts", "ml", "ops"):
            c.execute(f"CREATE SCHEMA {schema}")
        c.execute("""CREATE TABLE marts.demo (day DATE, sku VARCHAR, label VARCHAR,
                     amount DECIMAL(18,2), qty INTEGER, ts TIMESTAMP)""")
        c.executemany("INSERT INTO marts.demo VALUES (?, ?, ?, ?, ?, ?)", ROWS)
        c.execute("CREATE TABLE marts.other (k INTEGER)")
        c.execute("INSERT INTO marts.other VALUES (1), (2)")
        yield c
    finally:
        c.close()


def table(con, name="marts.demo"):
    return con.execute(f"SELECT * FROM {name} ORDER BY ALL").fetchall()


def read_csv_typed(con, path):
    return con.execute(
        "SELECT * FROM read_csv(?, header = true, delim = ',', columns = {'day': 'DATE', "
        "'sku': 'VARCHAR', 'label': 'VARCHAR', 'amount': 'DECIMAL(18,2)', 'qty': 'INTEGER', "
        "'ts': 'TIMESTAMP'}) ORDER BY ALL", [str(path)]).fetchall()


def test_round_trip_csv_and_parquet(con, tmp_path):
    out = tmp_path / "exports"
    csv_path, parquet_path = export_table(con, "marts.demo", out)
    assert (csv_path, parquet_path) == (out / "marts.demo.csv", out / "marts.demo.parquet")
    assert con.execute("SELECT * FROM read_parquet(?) ORDER BY ALL", [str(parquet_path)]).fetchall() \
        == table(con)
    assert con.execute("SELECT typeof(amount), typeof(day) FROM read_parquet(?) LIMIT 1",
                       [str(parquet_path)]).fetchall() == [("DECIMAL(18,2)", "DATE")]
    assert read_csv_typed(con, csv_path) == table(con)

    with open(csv_path, encoding="utf-8", newline="") as fh:
        lines = list(csv.reader(fh))
    assert lines[0] == ["day", "sku", "label", "amount", "qty", "ts"]
    body = sorted(lines[1:])
    assert body[0] == ["2025-01-02", "A-1", "Café, \"special\"", "12.30", "3", "2025-01-02 09:05:01"]
    assert body[1][:4] == ["2025-01-03", "B-2", "", "-0.05"]
    assert body[2][3] == "1234567.89"  # plain decimals, no exponent or thousands separator


def test_where_filter_with_parameters(con, tmp_path):
    csv_path, parquet_path = export_table(con, "marts.demo", tmp_path, where_sql="day >= ?",
                                          params=[date(2025, 1, 3)])
    assert [r[1] for r in read_csv_typed(con, csv_path)] == ["B-2", "C-3"]
    assert con.execute("SELECT count(*) FROM read_parquet(?)", [str(parquet_path)]).fetchall() == [(2,)]


def test_empty_table_has_a_header(con, tmp_path):
    csv_path, parquet_path = export_table(con, "marts.demo", tmp_path, where_sql="false")
    assert csv_path.read_text(encoding="utf-8").splitlines() == ["day,sku,label,amount,qty,ts"]
    assert con.execute("SELECT count(*) FROM read_parquet(?)", [str(parquet_path)]).fetchall() == [(0,)]


@pytest.mark.parametrize("name", [
    "marts.nope",
    "demo",
    "main.t",
    "information_schema.tables",
    "marts.demo; DROP TABLE marts.demo",
    'marts.demo" --',
    "marts.demo.x",
    "raw.sales; --",
    "",
])
def test_bad_table_names_are_refused(con, tmp_path, name):
    con.execute("CREATE TABLE IF NOT EXISTS main.t (x INTEGER)")
    with pytest.raises(ExportError):
        export_table(con, name, tmp_path / "out")
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
    assert len(table(con)) == 3


def test_raw_ml_ops_tables_can_be_exported(con, tmp_path):
    ensure_schema(con)
    csv_path, _ = export_table(con, "raw.sales", tmp_path)
    assert csv_path.name == "raw.sales.csv"
    assert csv_path.read_text(encoding="utf-8").startswith("sale_id,sale_ts,sale_date,")


@pytest.mark.parametrize("where_sql", ["no_such_column = ?", "CAST(sku AS INTEGER) > ?"])
def test_failed_export_keeps_the_previous_files_and_no_temp_files(con, tmp_path, where_sql):
    out = tmp_path / "out"
    csv_path, parquet_path = export_table(con, "marts.demo", out)
    before = (csv_path.read_bytes(), parquet_path.read_bytes())
    with pytest.raises(Exception):
        export_table(con, "marts.demo", out, where_sql=where_sql, params=[1])
    assert (csv_path.read_bytes(), parquet_path.read_bytes()) == before
    assert sorted(p.name for p in out.iterdir()) == ["marts.demo.csv", "marts.demo.parquet"]


def test_files_appear_only_by_rename(con, tmp_path, monkeypatch):
    out = tmp_path / "out"
    seen = []

    def no_replace(src, dst):
        seen.append((Path(src).name, Path(dst).name, Path(src).stat().st_size > 0))
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", no_replace)
    with pytest.raises(OSError):
        export_table(con, "marts.demo", out)
    assert len(seen) == 1
    src, dst, written = seen[0]
    assert dst == "marts.demo.csv" and src.startswith(".marts.demo.csv.") and written
    assert list(out.iterdir()) == []  # the temp file is removed, no half file left behind


def test_re_export_replaces_the_files(con, tmp_path):
    csv_path, parquet_path = export_table(con, "marts.demo", tmp_path)
    con.execute("DELETE FROM marts.demo WHERE sku = 'C-3'")
    assert export_table(con, "marts.demo", tmp_path) == (csv_path, parquet_path)
    assert len(csv_path.read_text(encoding="utf-8").splitlines()) == 3
    assert con.execute("SELECT count(*) FROM read_parquet(?)", [str(parquet_path)]).fetchall() == [(2,)]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_semicolon_in_filter_is_refused(con, tmp_path):
    with pytest.raises(ExportError):
        export_table(con, "marts.demo", tmp_path, where_sql="true; DROP TABLE marts.demo")
    assert len(table(con)) == 3


def test_export_marts_writes_every_marts_table_only(con, tmp_path):
    paths = export_marts(con, tmp_path / "marts")
    assert [p.name for p in paths] == ["marts.demo.csv", "marts.demo.parquet",
                                       "marts.other.csv", "marts.other.parquet"]
    assert all(p.exists() for p in paths)
    assert con.execute("SELECT * FROM read_csv(?) ORDER BY 1", [str(paths[2])]).fetchall() \
        == [(1,), (2,)]


HOSTILE = ["=HYPERLINK(\"http://x\",\"y\")", "+cmd|' /C calc'!A0", "-2+3", "@SUM(1)", "  =1+1",
           "\tTAB", "\rCR", "plain", "a=b", "", "'quoted"]


def test_csv_cells_never_start_a_formula_and_numbers_stay_numbers(con, tmp_path):
    from salesflow.reports.excel import is_formula_like

    con.execute("CREATE TABLE marts.hostile (k INTEGER, sku VARCHAR, amount DECIMAL(18,2), "
                "delta INTEGER, ratio DOUBLE)")
    con.executemany("INSERT INTO marts.hostile VALUES (?, ?, ?, ?, ?)",
                    [(i, s, Decimal("-12.50"), -3, -0.25) for i, s in enumerate(HOSTILE)])
    csv_path, parquet_path = export_table(con, "marts.hostile", tmp_path)
    with open(csv_path, encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))[1:]
    cells = {int(r[0]): r for r in rows}
    for i, text in enumerate(HOSTILE):
        k, sku, amount, delta, ratio = cells[i]
        # the one rule the xlsx reports follow decides which cells are neutralised
        assert sku == ("'" + text if is_formula_like(text) else text), (text, sku)
        assert not sku.lstrip(" ").startswith(("=", "+", "-", "@", "\t", "\r"))
        assert (amount, delta, ratio) == ("-12.50", "-3", "-0.25")  # numbers, not text
    assert sum(is_formula_like(t) for t in HOSTILE) == 7
    # the Parquet file keeps the values as they are
    assert [r[0] for r in con.execute("SELECT sku FROM read_parquet(?) ORDER BY k",
                                      [str(parquet_path)]).fetchall()] == HOSTILE
    typed = con.execute("SELECT typeof(amount), typeof(delta) FROM read_csv(?) LIMIT 1",
                        [str(csv_path)]).fetchone()
    assert typed[0].startswith("DOUBLE") or typed[0].startswith("DECIMAL")
    assert typed[1] in ("BIGINT", "INTEGER")
