"""Reruns complete: after a run stopped at any step boundary (of the first full load and of a
day's run) the next `salesflow materialize` ends with exactly the tables of an uninterrupted
run, and a run killed with -9 on a persistent instance neither stays "started" nor keeps the
warehouse pool."""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import date, datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from assets.extract import extract_assets
from assets.marts import mart_assets
from assets.ml import ml_assets
from assets.reorder import reorder_assets
from assets.reports import monthly_report, report_assets, weekly_report
from emulator.clock import FixedClock
from emulator.testing import running_emulator, seed_from_frames
from pipelines import runner
from pipelines.definitions import defs
from pipelines.runner import run_daily
from tests.conftest import SHOP_START, pipeline_resources

ROOT = Path(__file__).resolve().parent.parent
# A shop of one week: the first full load covers 2025-01-01..07 (its core is on the 8th), the
# next day's run 2025-01-08 (its core is on the 9th).
FULL_AS_OF, DAILY_AS_OF = date(2025, 1, 7), date(2025, 1, 8)
CORE_NOW = {"full": datetime(2025, 1, 8, 0, 30), "daily": datetime(2025, 1, 9, 0, 30)}
AS_OF = {"full": FULL_AS_OF, "daily": DAILY_AS_OF}
# the daily job's assets (weekly and monthly reports have their own partitions and jobs)
DAILY_ASSETS = [a for a in (*extract_assets, *mart_assets, *ml_assets, *reorder_assets, *report_assets)
                if a not in (weekly_report, monthly_report)]
# a step boundary is "the first k steps of daily_job done", k = 0..STEPS
STEPS = len(defs.resolve_job_def("daily_job").graph.node_names())
# columns that record when a row was written, not what it says
WHEN_WRITTEN = {"extracted_at", "sent_at", "created_at", "finished_at", "imported_at", "received_at",
                "committed_at"}


class Killed(BaseException):
    """The runner's process dies here."""


def dump(path: Path) -> dict[str, list]:
    """Every table of the warehouse, row for row, without the columns saying when rows were
    written (and without the runner's own ledger of runs)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        out = {}
        for schema, table in con.execute(
                "SELECT schema_name, table_name FROM duckdb_tables() ORDER BY 1, 2").fetchall():
            if (schema, table) == ("ops", "daily_runs"):
                continue
            columns = [c for (c,) in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE schema_name = ? AND table_name = ? "
                "ORDER BY column_index", [schema, table]).fetchall() if c not in WHEN_WRITTEN]
            names = ", ".join(f'"{c}"' for c in columns)
            rows = con.execute(f'SELECT {names} FROM "{schema}"."{table}" ORDER BY ALL').fetchall()
            out[f"{schema}.{table}"] = [tuple("NaN" if isinstance(v, float) and math.isnan(v) else v
                                              for v in row) for row in rows]
        return out
    finally:
        con.close()


def differences(got: dict, want: dict) -> list[str]:
    return [f"{t}: {len(got.get(t, []))} rows, want {len(want.get(t, []))}"
            + ("" if len(got.get(t, [])) != len(want.get(t, [])) else " (values differ)")
            for t in sorted(set(got) | set(want)) if got.get(t) != want.get(t)]


@pytest.fixture(scope="module")
def cores(tmp_path_factory):
    """The shop, served on each core day (these runs only read the core)."""
    from emulator.demo import generate_demo

    shop = generate_demo(11, SHOP_START, DAILY_AS_OF, n_products=8, orders_per_day=6.0)
    folder = tmp_path_factory.mktemp("rerun-cores")
    template = folder / "seeded.sqlite3"
    seed_from_frames(template, shop.products, shop.sales, clock=FixedClock(CORE_NOW["full"]))
    for day in CORE_NOW:
        shutil.copy(template, folder / f"{day}.sqlite3")
    with running_emulator(folder / "full.sqlite3", clock=FixedClock(CORE_NOW["full"])) as full, \
            running_emulator(folder / "daily.sqlite3", clock=FixedClock(CORE_NOW["daily"])) as daily:
        yield {"full": full, "daily": daily}


def materialize(emu, warehouse: Path, as_of: date, **kw) -> runner.RunSummary:
    with dg.DagsterInstance.ephemeral() as instance:
        return run_daily(as_of=as_of, instance=instance, warehouse_path=warehouse,
                         resources=pipeline_resources(emu, warehouse), log_level="WARNING", **kw)


def reference_run(emu, warehouse: Path, as_of: date) -> list[list[dg.AssetKey]]:
    """An uninterrupted run; returns the asset keys each step of its daily job wrote, in order."""
    with dg.DagsterInstance.ephemeral() as instance:
        result = run_daily(as_of=as_of, instance=instance, warehouse_path=warehouse,
                           resources=pipeline_resources(emu, warehouse), log_level="WARNING")
        assert result.success, result.summary()
        steps: dict[str, list[dg.AssetKey]] = {}
        for record in instance.all_logs(result.run_id):
            event = record.dagster_event
            if event is not None and event.is_step_start:
                steps[event.step_key] = []
            elif event is not None and event.is_step_materialization:
                steps[event.step_key].append(event.asset_key)
    assert len(steps) == STEPS, list(steps)
    return list(steps.values())


@pytest.fixture(scope="module")
def references(tmp_path_factory, cores):
    """Uninterrupted runs on the same cores: the first full load, then the next day's run."""
    folder = tmp_path_factory.mktemp("rerun-references")
    (folder / "full").mkdir()
    (folder / "daily").mkdir()
    steps = reference_run(cores["full"], folder / "full" / "w.duckdb", FULL_AS_OF)
    shutil.copy(folder / "full" / "w.duckdb", folder / "daily" / "w.duckdb")
    reference_run(cores["daily"], folder / "daily" / "w.duckdb", DAILY_AS_OF)
    refs = {"steps": steps, "full_load": folder / "full" / "w.duckdb",
            "full": dump(folder / "full" / "w.duckdb"), "daily": dump(folder / "daily" / "w.duckdb")}
    for table in ("raw.sales", "raw.stock_snapshots", "marts.daily_sales", "marts.kpis", "marts.top_products",
                  "marts.stock_status", "marts.customer_rfm", "ml.sales_forecast", "ml.forecast_backtest"):
        assert refs["full"][table] and len(refs["daily"][table]) >= len(refs["full"][table]), table
    return refs


def killed_run_snapshots(emu, warehouse: Path, as_of: date, steps, folder: Path) -> list[Path | None]:
    """Run the runner for ``as_of`` one step at a time, copying the warehouse before the first
    step and after each: snapshot k is the warehouse of a run killed after its first k steps."""
    snapshots: list[Path | None] = []

    def snapshot():
        copy = folder / f"after-{len(snapshots)}-steps.duckdb"
        if warehouse.exists():
            shutil.copy(warehouse, copy)
        snapshots.append(copy if warehouse.exists() else None)

    execute_in_process = dg.JobDefinition.execute_in_process

    def step_by_step(job, run_id=None, **kwargs):
        if job.name != "daily_job":
            if job.name.endswith("report_job"):
                raise Killed("before the weekly and monthly reports")
            return execute_in_process(job, run_id=run_id, **kwargs)
        snapshot()
        kwargs["resources"] = {**defs.resources, **kwargs["resources"]}
        if "partition_key" in kwargs:  # one day as a range of one: the same time window
            day = kwargs.pop("partition_key")
            kwargs["tags"] = {**(kwargs.get("tags") or {}), ASSET_PARTITION_RANGE_START_TAG: day,
                              ASSET_PARTITION_RANGE_END_TAG: day}
        for keys in steps:
            assert dg.materialize(DAILY_ASSETS, selection=keys, **kwargs).success
            snapshot()
        raise Killed("after the last step")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dg.JobDefinition, "execute_in_process", step_by_step)
        with pytest.raises(Killed):
            materialize(emu, warehouse, as_of)
    return snapshots


@pytest.fixture(scope="module")
def killed(tmp_path_factory, cores, references):
    """The warehouses of runs killed at each step boundary, per scenario (made when first asked)."""
    made: dict[str, list[Path | None]] = {}

    def at(scenario: str, steps_done: int) -> Path | None:
        if scenario not in made:
            folder = tmp_path_factory.mktemp(f"killed-{scenario}")
            warehouse = folder / "run" / "w.duckdb"
            warehouse.parent.mkdir()
            if scenario == "daily":  # the day after an uninterrupted first full load
                shutil.copy(references["full_load"], warehouse)
            made[scenario] = killed_run_snapshots(cores[scenario], warehouse, AS_OF[scenario],
                                                  references["steps"], folder)
        return made[scenario][steps_done]
    return at


@pytest.mark.slow
@pytest.mark.parametrize("steps_done", range(STEPS + 1))
@pytest.mark.parametrize("scenario", ["full", "daily"])
def test_rerun_after_a_kill_at_a_step_boundary_ends_as_an_uninterrupted_run(
        tmp_path, cores, references, killed, scenario, steps_done):
    warehouse = tmp_path / "w.duckdb"
    if killed(scenario, steps_done) is not None:
        shutil.copy(killed(scenario, steps_done), warehouse)
    result = materialize(cores[scenario], warehouse, AS_OF[scenario])
    assert result.success, result.summary()
    assert not differences(dump(warehouse), references[scenario])
    assert result.start == (SHOP_START if scenario == "full" else DAILY_AS_OF)


@pytest.mark.slow
def test_kill_9_mid_run_then_the_next_run_frees_the_pool_and_completes(tmp_path, cores, references):
    """`salesflow materialize` on a persistent instance (as `make run`), killed with -9 while a
    warehouse step holds the pool's only slot and raw sales have landed: the next run marks the
    dead run failed, frees its slot instead of waiting for it forever, and completes the load."""
    from resources import WAREHOUSE_POOL

    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    warehouse = tmp_path / "w.duckdb"
    emu = cores["full"]
    env = {**os.environ, "DAGSTER_HOME": str(home), "SALESFLOW_CORE_URL": emu.url,
           "SALESFLOW_CORE_PHONE": emu.admin[0], "SALESFLOW_CORE_PASSWORD": emu.admin[1],
           "SALESFLOW_WAREHOUSE": str(warehouse), "SALESFLOW_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "pipelines.cli", "materialize", "--as-of", str(FULL_AS_OF)]
    proc = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        with dg.DagsterInstance.from_config(str(home)) as watcher:
            deadline = time.monotonic() + 180
            while not (watcher.fetch_materializations(dg.AssetKey(["raw", "sales"]), limit=1).records
                       and watcher.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).claimed_slots):
                assert proc.poll() is None, "the run ended before it could be killed"
                assert time.monotonic() < deadline, "the run did not reach its warehouse steps"
                time.sleep(0.05)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            (dead,) = watcher.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    # without freeing the dead run's slot this run would wait for the pool forever
    second = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert second.returncode == 0, (second.stdout + second.stderr)[-3000:]
    assert f"run {dead.run_id} of a killed process marked failed" in second.stdout
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
        assert not instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).claimed_slots
    assert not differences(dump(warehouse), references["full"])


def test_a_warehouse_without_the_ledger_is_completed_from_its_missing_marts(tmp_path, cores, references, killed):
    """A run killed between raw and marts on a warehouse older than ops.daily_runs (or by a run
    the runner did not start): the days without marts are found in the warehouse itself."""
    warehouse = tmp_path / "w.duckdb"
    raw_done = next(k for k, keys in enumerate(references["steps"], 1)
                    if dg.AssetKey(["raw", "sales"]) in keys)
    shutil.copy(killed("full", raw_done), warehouse)
    con = duckdb.connect(str(warehouse))
    con.execute("DROP TABLE IF EXISTS ops.daily_runs")
    con.close()
    result = materialize(cores["full"], warehouse, FULL_AS_OF)
    assert result.success, result.summary()
    assert not differences(dump(warehouse), references["full"])
    assert result.start == SHOP_START and f"marts missing or older than raw data from {SHOP_START}" in result.summary()



def test_the_next_run_starts_at_the_first_day_whose_marts_are_missing_or_stale(tmp_path, references):
    """Raw data written after the marts (a merge, an import) or marts lost: the runner's plan
    goes back to the first such day; a complete warehouse runs the asked day only."""
    warehouse = tmp_path / "w.duckdb"
    shutil.copy(references["full_load"], warehouse)
    assert runner.plan_start(warehouse, SHOP_START, FULL_AS_OF) == (FULL_AS_OF, [])
    con = duckdb.connect(str(warehouse))
    con.execute("UPDATE raw.sale_items SET quantity = quantity + 1 WHERE sale_id = "
                "(SELECT min(sale_id) FROM raw.sales WHERE sale_date = DATE '2025-01-05')")
    con.close()
    assert runner.plan_start(warehouse, SHOP_START, FULL_AS_OF) == (
        date(2025, 1, 5), ["marts missing or older than raw data from 2025-01-05"])
    con = duckdb.connect(str(warehouse))
    con.execute("DELETE FROM marts.kpis WHERE as_of = DATE '2025-01-03'")
    con.close()
    assert runner.plan_start(warehouse, SHOP_START, FULL_AS_OF)[0] == date(2025, 1, 3)
    assert runner.plan_start(warehouse, SHOP_START, FULL_AS_OF, since=date(2025, 1, 2))[0] == date(2025, 1, 2)

def test_ledger_keeps_a_range_open_until_a_run_covering_it_succeeds(tmp_path):
    from salesflow import run_ledger
    from salesflow.warehouse import connect

    def day(n: int) -> date:
        return date(2025, 1, n)

    with connect(tmp_path / "w.duckdb") as con:
        assert run_ledger.open_start(con, day(7)) is None
        run_ledger.begin(con, "killed", day(1), day(7))
        assert run_ledger.open_start(con, day(7)) == day(1)
        assert run_ledger.open_start(con, day(6)) is None  # it ends after that as-of
        run_ledger.begin(con, "failed", day(8), day(8))
        run_ledger.finish(con, "failed", success=False)
        assert run_ledger.open_start(con, day(8)) == day(1)
        run_ledger.begin(con, "covering", day(3), day(8))
        run_ledger.finish(con, "covering", success=True)  # does not contain the 1st and 2nd
        assert run_ledger.open_start(con, day(8)) == day(1)
        run_ledger.begin(con, "complete", day(1), day(8))
        run_ledger.finish(con, "complete", success=True)
        assert run_ledger.open_start(con, day(8)) is None
        assert dict(con.execute("SELECT run_id, status FROM ops.daily_runs").fetchall()) == {
            "killed": "covered", "failed": "covered", "covering": "succeeded", "complete": "succeeded"}
