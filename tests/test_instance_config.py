"""The Dagster instance files: local default and the PostgreSQL production shape, for real."""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from pathlib import Path

import dagster as dg
import pytest

from emulator.clock import FixedClock
from emulator.testing import running_emulator
from pipelines.runner import run_daily
from tests.conftest import CORE_NOW, SHOP_END, pipeline_resources

ROOT = Path(__file__).resolve().parent.parent
PG_HOST, PG_PORT = "127.0.0.1", 5432


def instance_from(tmp_path: Path, config_file: Path) -> dg.DagsterInstance:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(config_file, home / "dagster.yaml")
    return dg.DagsterInstance.from_config(str(home))


def test_local_instance_serialises_warehouse_writers(tmp_path):
    from resources import WAREHOUSE_POOL
    from pipelines.definitions import defs

    with instance_from(tmp_path, ROOT / "dagster.yaml") as instance:
        concurrency = instance.get_concurrency_config()
        assert concurrency.pool_config.default_pool_limit == 1
        assert concurrency.run_queue_config.max_concurrent_runs >= 1
        assert instance.run_coordinator.__class__.__name__ == "QueuedRunCoordinator"
    # every asset that opens the warehouse is in the pool the limit applies to; the tables only
    # imports fill are declared, not executed (import_job's op is in the pool)
    graph = defs.resolve_asset_graph()
    executed = [k for k in graph.get_all_asset_keys() if graph.get(k).is_executable]
    assert len(executed) > 20
    for key in executed:
        assert graph.get(key).pools == {WAREHOUSE_POOL}, key
    assert defs.resolve_job_def("import_job").graph.node_defs[0].pool == WAREHOUSE_POOL



@pytest.mark.parametrize("config_file", ["dagster.yaml", "deploy/dagster.postgres.yaml"])
def test_run_monitoring_frees_the_slots_of_ended_runs(tmp_path, config_file):
    """A killed run must not hold the warehouse pool forever: the daemon's run monitoring fails
    runs whose worker died and frees the slots of ended runs (both instance files)."""
    from dagster._core.instance.config import dagster_instance_config

    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(ROOT / config_file, home / "dagster.yaml")
    config, _ = dagster_instance_config(str(home))  # validated against Dagster's schema
    monitoring = config.get("run_monitoring") or {}
    assert monitoring.get("enabled") is True
    assert 0 < monitoring.get("free_slots_after_run_end_seconds", 0) <= 300
    assert 0 < monitoring.get("start_timeout_seconds", 180) <= 600
    if config_file == "dagster.yaml":
        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert instance.run_monitoring_enabled
            assert instance.event_log_storage.supports_global_concurrency_limits


def _postgres_up() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def pg_database():
    if not _postgres_up():
        pytest.skip(f"PostgreSQL is not running on {PG_HOST}:{PG_PORT}: the production-shape "
                    "storage test needs it (start it, or run `make test` where it runs)")
    import psycopg2

    name = f"salesflow_test_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(host=PG_HOST, port=PG_PORT, dbname="test", user=os.environ.get("PGUSER", "postgres"))
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.mark.postgres
def test_runs_events_and_pools_on_postgres(tmp_path, monkeypatch, pg_database, core_state):
    monkeypatch.setenv("DAGSTER_PG_HOST", PG_HOST)
    monkeypatch.setenv("DAGSTER_PG_PORT", str(PG_PORT))
    monkeypatch.setenv("DAGSTER_PG_USER", os.environ.get("PGUSER", "postgres"))
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "")
    monkeypatch.setenv("DAGSTER_PG_DB", pg_database)
    warehouse = tmp_path / "w.duckdb"
    with instance_from(tmp_path, ROOT / "deploy" / "dagster.postgres.yaml") as instance:
        assert "Postgres" in type(instance.run_storage).__name__
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
        with running_emulator(core_state, clock=FixedClock(CORE_NOW)) as emu:
            result = run_daily(as_of=SHOP_END, instance=instance, warehouse_path=warehouse,
                               resources=pipeline_resources(emu, warehouse))
        assert result.success, result.summary()
        run = instance.get_run_by_id(result.run_id)
        assert run is not None and run.is_success
        sales = instance.fetch_materializations(dg.AssetKey(["raw", "sales"]), limit=1).records
        assert sales and sales[0].run_id == result.run_id
        checks = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey(["raw", "sales"]), "reconciles_with_core"), limit=1)
        assert checks and checks[0].run_id == result.run_id


CHILD_EXTRACT = """
import sys
from datetime import date
import dagster as dg
from pipelines.definitions import defs
with dg.DagsterInstance.get() as instance:
    result = defs.resolve_job_def("extract_job").execute_in_process(
        instance=instance, partition_key=sys.argv[1], raise_on_error=False)
sys.exit(0 if result.success else 1)
"""


@pytest.mark.postgres
@pytest.mark.slow
def test_concurrent_runs_never_fail_on_the_warehouse_lock(tmp_path, monkeypatch, pg_database, core_state):
    """A backfill of the whole history, the daily extraction and a spreadsheet import start at
    the same moment, as three processes on one PostgreSQL instance and one warehouse file: all
    succeed, and no two steps of the warehouse pool ever run at the same time."""
    import subprocess
    import sys
    import time

    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "deploy" / "dagster.postgres.yaml", home / "dagster.yaml")
    if os.environ.get("SALESFLOW_TEST_POOL_LIMIT"):  # to see the test fail without the pool
        text = (home / "dagster.yaml").read_text()
        (home / "dagster.yaml").write_text(text.replace("default_limit: 1", "default_limit: "
                                                        + os.environ["SALESFLOW_TEST_POOL_LIMIT"]))
    pg_env = {"DAGSTER_PG_HOST": PG_HOST, "DAGSTER_PG_PORT": str(PG_PORT),
              "DAGSTER_PG_USER": os.environ.get("PGUSER", "postgres"), "DAGSTER_PG_PASSWORD": "",
              "DAGSTER_PG_DB": pg_database}
    for k, v in pg_env.items():
        monkeypatch.setenv(k, v)
    (tmp_path / "inbox").mkdir()
    expenses = tmp_path / "expenses-june.csv"
    expenses.write_text("date,category,amount,description\n2025-06-01,Rent,1200.00,June rent\n"
                        "2025-06-15,Utilities,85.40,Power\n")
    with running_emulator(core_state, clock=FixedClock(CORE_NOW)) as emu:
        env = {**os.environ, **pg_env, "DAGSTER_HOME": str(home), "SALESFLOW_CORE_URL": emu.url,
               "SALESFLOW_CORE_PHONE": emu.admin[0], "SALESFLOW_CORE_PASSWORD": emu.admin[1],
               "SALESFLOW_WAREHOUSE": str(tmp_path / "w.duckdb"), "SALESFLOW_HOME": str(tmp_path),
               "PYTHONPATH": str(ROOT)}
        bin_dir = Path(sys.executable).parent
        commands = {
            "backfill": [str(bin_dir / "salesflow"), "materialize", "--as-of", str(SHOP_END)],
            "extract": [sys.executable, "-c", CHILD_EXTRACT, str(SHOP_END)],
            "import": [str(bin_dir / "salesflow"), "import", str(expenses)],
        }
        def start(name):
            return subprocess.Popen(commands[name], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)

        # the backfill first; the others as soon as its run has started, so that they meet
        procs = {"backfill": start("backfill")}
        with dg.DagsterInstance.from_config(str(home)) as watcher:
            deadline = time.monotonic() + 180
            while not watcher.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
                assert procs["backfill"].poll() is None, procs["backfill"].communicate()[0][-3000:]
                assert time.monotonic() < deadline, "the backfill run did not start"
                time.sleep(0.2)
        procs |= {name: start(name) for name in ("extract", "import")}
        outputs = {name: p.communicate(timeout=600)[0] for name, p in procs.items()}
    for name, proc in procs.items():
        assert proc.returncode == 0, f"{name} failed:\n{outputs[name][-3000:]}"
        assert "Could not set lock" not in outputs[name], name

    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        assert len(runs) >= 3
        intervals = []
        for run in runs:
            started = {}
            for record in instance.all_logs(run.run_id):
                event = record.dagster_event
                if event is None or not event.step_key or event.step_key.startswith("freshness_check"):
                    continue
                if event.event_type_value == "STEP_START":
                    started[event.step_key] = record.timestamp
                elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and event.step_key in started:
                    intervals.append((started.pop(event.step_key), record.timestamp, run.run_id, event.step_key))
        assert len({run_id for *_, run_id, _ in intervals}) >= 3
        for s1, e1, r1, k1 in intervals:
            for s2, e2, r2, k2 in intervals:
                if r1 != r2:
                    assert e1 <= s2 or e2 <= s1, f"{k1} of run {r1[:8]} overlapped {k2} of run {r2[:8]}"
    con = __import__("duckdb").connect(str(tmp_path / "w.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM raw.expenses").fetchone()[0] == 2
    assert con.execute("SELECT max(sale_date) FROM raw.sales").fetchone()[0] == SHOP_END
    con.close()


def _pool_holder(instance: dg.DagsterInstance, pid: int, process_start: str = "") -> str:
    """A started run of the runner, tagged with process ``pid``, holding the warehouse pool's slot."""
    import socket

    from dagster._core.storage.dagster_run import DagsterRun
    from dagster._core.utils import make_new_run_id

    from pipelines.runner import HOST_TAG, PID_TAG, PROCESS_TAG
    from resources import WAREHOUSE_POOL

    run = DagsterRun(job_name="daily_job", run_id=make_new_run_id(), status=dg.DagsterRunStatus.STARTED,
                     tags={HOST_TAG: socket.gethostname(), PID_TAG: str(pid), PROCESS_TAG: process_start})
    instance.add_run(run)
    claim = instance.event_log_storage.claim_concurrency_slot(WAREHOUSE_POOL, run.run_id, "raw_sales")
    assert claim.is_claimed
    return run.run_id


def _check_dead_runs_free_the_pool(instance: dg.DagsterInstance) -> None:
    import subprocess
    import sys

    from pipelines.runner import _process_state, free_dead_runs
    from resources import WAREHOUSE_POOL

    def holders():
        return {slot.run_id for slot in
                instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).claimed_slots}

    instance.event_log_storage.initialize_concurrency_limit_to_default(WAREHOUSE_POOL)  # limit 1
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    living = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        killed = _pool_holder(instance, gone.pid)
        assert holders() == {killed}
        assert f"run {killed} of a killed process marked failed" in free_dead_runs(instance)
        assert instance.get_run_by_id(killed).status == dg.DagsterRunStatus.FAILURE
        assert holders() == set()
        # a run whose process still runs keeps its slot
        running = _pool_holder(instance, living.pid, _process_state(living.pid)[1])
        free_dead_runs(instance)
        assert instance.get_run_by_id(running).status == dg.DagsterRunStatus.STARTED
        assert holders() == {running}
        # the same pid reused by another process is not the run's process
        instance.report_run_failed(instance.get_run_by_id(running))
        free_dead_runs(instance)
        reused = _pool_holder(instance, living.pid, "1")
        free_dead_runs(instance)
        assert instance.get_run_by_id(reused).status == dg.DagsterRunStatus.FAILURE
        assert holders() == set()
    finally:
        living.kill()
        living.wait()


def test_cli_runs_free_the_pool_slots_of_killed_runs(tmp_path):
    with instance_from(tmp_path, ROOT / "dagster.yaml") as instance:
        _check_dead_runs_free_the_pool(instance)


@pytest.mark.postgres
def test_cli_runs_free_the_pool_slots_of_killed_runs_on_postgres(tmp_path, monkeypatch, pg_database):
    monkeypatch.setenv("DAGSTER_PG_HOST", PG_HOST)
    monkeypatch.setenv("DAGSTER_PG_PORT", str(PG_PORT))
    monkeypatch.setenv("DAGSTER_PG_USER", os.environ.get("PGUSER", "postgres"))
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "")
    monkeypatch.setenv("DAGSTER_PG_DB", pg_database)
    with instance_from(tmp_path, ROOT / "deploy" / "dagster.postgres.yaml") as instance:
        assert "Postgres" in type(instance.event_log_storage).__name__
        _check_dead_runs_free_the_pool(instance)
