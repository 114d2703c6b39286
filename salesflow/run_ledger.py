"""Which partition ranges the headless runner started and finished (``ops.daily_runs``), and
which days of the warehouse lack their marts: what a rerun must cover to complete a killed or
failed run."""

from __future__ import annotations

from datetime import date

import duckdb

from salesflow.mart_checks import check_daily_against_raw
from salesflow.marts import provisional_days
from salesflow.warehouse import has_table

DAILY_RUNS_DDL = """
    CREATE TABLE IF NOT EXISTS ops.daily_runs (
        run_id VARCHAR, range_start DATE, range_end DATE, started_at TIMESTAMP,
        finished_at TIMESTAMP, status VARCHAR)"""

# running: started, not ended (a kill leaves it so); failed: ended with a failure;
# succeeded; covered: completed later by a run whose range contains it
OPEN = "('running', 'failed')"


def begin(con: duckdb.DuckDBPyConnection, run_id: str, start: date, end: date) -> None:
    con.execute(DAILY_RUNS_DDL)
    con.execute("INSERT INTO ops.daily_runs VALUES (?, ?, ?, now()::TIMESTAMP, NULL, 'running')",
                [run_id, start, end])


def finish(con: duckdb.DuckDBPyConnection, run_id: str, success: bool) -> None:
    """Record the run's end; a success also closes every open range it covered."""
    con.execute(DAILY_RUNS_DDL)
    start, end = con.execute("SELECT range_start, range_end FROM ops.daily_runs WHERE run_id = ?",
                             [run_id]).fetchone()
    con.execute("UPDATE ops.daily_runs SET status = ?, finished_at = now()::TIMESTAMP WHERE run_id = ?",
                ["succeeded" if success else "failed", run_id])
    if success:
        con.execute(
            f"""UPDATE ops.daily_runs SET status = 'covered', finished_at = now()::TIMESTAMP
                WHERE status IN {OPEN} AND range_start >= ? AND range_end <= ?""", [start, end])


def open_start(con: duckdb.DuckDBPyConnection, as_of: date) -> date | None:
    """The first day of the ranges started and never completed, among those ending by ``as_of``."""
    if not has_table(con, "ops", "daily_runs"):
        return None
    return con.execute(f"SELECT min(range_start) FROM ops.daily_runs WHERE status IN {OPEN} "
                       "AND range_end <= ?", [as_of]).fetchone()[0]


def first_stale_day(con: duckdb.DuckDBPyConnection, first: date, as_of: date) -> date | None:
    """The earliest day from ``first`` to ``as_of`` whose marts are missing or older than its raw
    data: no marts.kpis windows, marts.daily_sales (a row for every calendar day) missing or
    disagreeing with raw.sales and raw.sale_items, or still provisional (figures so far of a
    day that has since ended)."""
    tables = [("marts", "daily_sales"), ("marts", "kpis"), ("raw", "sales"), ("raw", "sale_items")]
    if not all(has_table(con, *t) for t in tables):
        return first
    stale = check_daily_against_raw(con, first, as_of)
    no_kpis = con.execute(
        """SELECT min(d.day)::DATE FROM range(?::TIMESTAMP, ?::TIMESTAMP + INTERVAL 1 DAY,
                                              INTERVAL 1 DAY) d(day)
           WHERE NOT EXISTS (SELECT 1 FROM marts.kpis k WHERE k.as_of = d.day::DATE)""",
        [first, as_of]).fetchone()[0]
    days = [date.fromisoformat(stale[0]["day"])] if stale else []
    open_days = [d for d in provisional_days(con) if first <= d <= as_of]
    return min(days + open_days[:1] + ([no_kpis] if no_kpis else []), default=None)
