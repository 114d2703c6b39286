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
    # every asset that opens the warehouse is in the pool the limit applies to
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.pools == {WAREHOUSE_POOL}, key


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
