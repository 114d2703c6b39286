"""Marts benchmark: full rebuild and one-day update on 10M sale lines, against plain pandas.

    .venv/bin/python benchmarks/marts.py [--lines 10000000] [--rounds 3]

Builds a synthetic warehouse once under benchmarks/.work/ (raw.* filled by SQL: 1,000
products, ~3 years, 2-3 lines per sale, 60% of sales with a customer id). Each measurement
runs in a fresh child process so its peak RSS is its own; rounds alternate the SQL marts and
the pandas baseline (benchmarks/pandas_baseline.py: the same marts with pandas groupbys) and
report the median.

- marts full rebuild: marts.daily_sales + product_daily_sales over the whole history, then
  the as-of marts (KPIs for the five windows, top products, stock status and turnover).
- pandas baseline: read the raw tables into DataFrames and compute the same marts for the
  as-of day (KPIs, per-product daily sales with distinct orders, top products, stock status).
- one-day update: one new day of sales lands in raw.*, then the daily marts for that day and
  the as-of marts for it.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import time
from datetime import date, timedelta
from pathlib import Path

from common import ROOT, median_run, report_child, run_child
WORK = ROOT / "benchmarks" / ".work"
END = date(2025, 6, 30)
DAYS = 3 * 365


def build_source(path: Path, lines: int) -> None:
    """Fill raw.* of a fresh warehouse with ``lines`` synthetic sale lines, by SQL."""
    import duckdb

    from salesflow.warehouse import ensure_schema

    path.unlink(missing_ok=True)
    con = duckdb.connect(str(path))
    ensure_schema(con)
    start = END - timedelta(days=DAYS - 1)
    con.execute("""
        INSERT INTO raw.products
        SELECT i, printf('SKU-%05d', i), printf('Product %d', i),
               CAST(1 + (hash(i) % 20000) / 100.0 AS DECIMAL(18,2)),
               CAST(hash(i * 7) % 400 AS INTEGER), 10 + CAST(hash(i * 3) % 20 AS INTEGER),
               NULL, now()::TIMESTAMP
        FROM range(1, 1001) t(i)""")
    con.execute("""
        INSERT INTO raw.inventory
        SELECT sku, name, CASE WHEN id % 33 = 0 THEN 'Uncategorized' ELSE 'Cat ' || (id % 8) END,
               CASE WHEN id % 33 = 0 THEN 0 ELSE CAST(price * 0.6 AS DECIMAL(18,2)) END,
               price, stock_quantity, now()::TIMESTAMP, now()::TIMESTAMP
        FROM raw.products""")
    n_sales = lines * 2 // 5
    con.execute("""
        CREATE TEMP TABLE l AS
        SELECT i AS line, (i * 2) // 5 AS sale_id, 1 + CAST(hash(i) % 1000 AS BIGINT) AS product_id,
               1 + CAST(hash(i * 31) % 3 AS INTEGER) AS quantity
        FROM range(?) t(i)""", [lines])
    con.execute("""
        INSERT INTO raw.sale_items
        SELECT l.sale_id, CAST(row_number() OVER (PARTITION BY l.sale_id ORDER BY l.line) AS INTEGER),
               l.product_id, p.sku, p.name, l.quantity, p.price, p.price * l.quantity
        FROM l JOIN raw.products p ON p.id = l.product_id ORDER BY l.sale_id""")
    con.execute("""
        INSERT INTO raw.sales
        SELECT sale_id, ts, CAST(ts AS DATE), total,
               CASE WHEN hash(sale_id * 13) % 10 < 6 THEN 'C' || (hash(sale_id * 17) % 100000) END,
               now()::TIMESTAMP
        FROM (SELECT i.sale_id,
                     CAST(? AS TIMESTAMP) + to_microseconds(CAST(i.sale_id * (? * 86400000000.0 / ?) AS BIGINT))
                       AS ts,
                     sum(i.subtotal) AS total
              FROM raw.sale_items i GROUP BY 1) ORDER BY sale_id""", [start, DAYS, n_sales])
    con.execute("""
        INSERT INTO raw.stock_snapshots
        SELECT CAST(? AS DATE) - CAST(d AS INTEGER), sku, stock_quantity + CAST(d AS INTEGER),
               low_stock_threshold
        FROM raw.products, range(90) t(d)""", [END])
    con.close()


def next_day_lines(con, day: date, n_sales: int = 4000) -> int:
    """Append one day of sales after the current history (as extraction would)."""
    first = con.execute("SELECT max(sale_id) + 1 FROM raw.sales").fetchone()[0]
    con.execute("BEGIN")
    con.execute("""
        INSERT INTO raw.sale_items
        SELECT ? + s, CAST(k AS INTEGER), p.id, p.sku, p.name, 1 + CAST(hash(s * k) % 3 AS INTEGER), p.price,
               p.price * (1 + CAST(hash(s * k) % 3 AS INTEGER))
        FROM range(?) a(s), range(1, 3) b(k)
        JOIN raw.products p ON p.id = 1 + CAST(hash(s * 101 + k) % 1000 AS BIGINT)""", [first, n_sales])
    con.execute("""
        INSERT INTO raw.sales
        SELECT sale_id, CAST(? AS TIMESTAMP) + INTERVAL 9 HOUR + to_microseconds((sale_id - ?) * 10000000),
               ?, sum(subtotal), NULL, now()::TIMESTAMP
        FROM raw.sale_items WHERE sale_id >= ? GROUP BY sale_id""", [day, first, day, first])
    con.execute("COMMIT")
    return con.execute("SELECT count(*) FROM raw.sale_items WHERE sale_id >= ?", [first]).fetchone()[0]


# -- child steps ---------------------------------------------------------------------------
def step_marts_full(path: Path) -> dict:
    import duckdb

    from salesflow import marts

    con = duckdb.connect(str(path))
    first = con.execute("SELECT min(sale_date) FROM raw.sales").fetchone()[0]
    t0 = time.perf_counter()
    marts.build_daily(con, first, END)
    marts.build_as_of(con, END)
    seconds = time.perf_counter() - t0
    kpis = con.execute("SELECT \"window\", revenue, orders FROM marts.kpis WHERE as_of = ? ORDER BY 1",
                       [END]).fetchall()
    con.close()
    return {"seconds": seconds, "kpis": [[w, str(r), o] for w, r, o in kpis]}


def step_pandas(path: Path) -> dict:
    import duckdb

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from pandas_baseline import pandas_marts

    con = duckdb.connect(str(path), read_only=True)
    t0 = time.perf_counter()
    tables = [con.execute(f"SELECT * FROM raw.{name}").df()
              for name in ("sales", "sale_items", "inventory", "products", "stock_snapshots")]
    loaded = time.perf_counter() - t0
    frames = pandas_marts(*tables, END)
    seconds = time.perf_counter() - t0
    con.close()
    frame = frames["kpis"]
    revenue = {str(r["window"]): str(r["revenue"]) for _, r in frame.iterrows()}
    return {"seconds": seconds, "load_seconds": loaded, "revenue": revenue,
            "product_days": len(frames["product_daily_sales"])}


def step_incremental(path: Path) -> dict:
    import duckdb

    from salesflow import marts

    con = duckdb.connect(str(path))
    day = END + timedelta(days=1)
    added = next_day_lines(con, day)
    t0 = time.perf_counter()
    marts.build_daily(con, day, day)
    marts.build_as_of(con, day)
    seconds = time.perf_counter() - t0
    con.close()
    return {"seconds": seconds, "lines_added": added}


STEPS = {"marts_full": step_marts_full, "pandas": step_pandas, "incremental": step_incremental}


def child(step: str, path: Path) -> dict:
    return run_child(__file__, ["--child", step, "--db", str(path)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", choices=sorted(STEPS))
    parser.add_argument("--db", type=Path)
    args = parser.parse_args()
    if args.child:
        return report_child(STEPS[args.child](args.db))

    sys.path.insert(0, str(ROOT))
    WORK.mkdir(parents=True, exist_ok=True)
    source = WORK / f"marts-{args.lines}.duckdb"
    if not source.exists():
        print(f"building a {args.lines:,}-line warehouse ...", flush=True)
        t0 = time.perf_counter()
        build_source(source, args.lines)
        print(f"built in {time.perf_counter() - t0:.1f} s", flush=True)
    scratch = WORK / "marts-scratch.duckdb"
    runs: dict[str, list[dict]] = {}
    for round_no in range(args.rounds):
        for step in ("marts_full", "pandas", "incremental"):
            print(f"round {round_no + 1}/{args.rounds}: {step} ...", flush=True)
            if step == "marts_full":
                shutil.copy(source, scratch)  # a warehouse with raw.* only
            runs.setdefault(step, []).append(child(step, scratch))
    res = {k: median_run(v) for k, v in runs.items()}
    full, pandas_, inc = res["marts_full"], res["pandas"], res["incremental"]
    report = "\n".join([
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        f"warehouse: {args.lines:,} sale lines, {args.lines * 2 // 5:,} sales, 1,000 products, {DAYS} days",
        "",
        "| measurement | seconds (median) | all rounds | peak RSS MB |",
        "| --- | ---: | --- | ---: |",
        f"| marts full rebuild (SQL) | {full['seconds']:.2f} | {full['all_seconds']} | {full['peak_rss_mb']:.0f} |",
        f"| pandas baseline (load {pandas_['load_seconds']:.1f} s + marts) | {pandas_['seconds']:.2f} | "
        f"{pandas_['all_seconds']} | {pandas_['peak_rss_mb']:.0f} |",
        f"| one new day ({inc['lines_added']:,} lines) | {inc['seconds']:.3f} | {inc['all_seconds']} | "
        f"{inc['peak_rss_mb']:.0f} |",
        "",
        f"SQL marts vs pandas: {pandas_['seconds'] / full['seconds']:.1f}x faster "
        f"({(pandas_['seconds'] - pandas_['load_seconds']) / full['seconds']:.1f}x counting pandas' "
        f"compute only, without loading the tables)",
        f"one-day update / full rebuild: {inc['seconds'] / full['seconds']:.1%}",
        f"KPIs (SQL, as of {END}): {full['kpis']}",
        f"KPIs (pandas revenue by window): {pandas_['revenue']}",
    ])
    print(report)
    (WORK / "marts-latest.md").write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
