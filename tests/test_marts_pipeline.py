"""The mart assets end to end on the small demo shop: built, checked, exported."""

from __future__ import annotations

import csv
from datetime import date

import dagster as dg
import duckdb

from emulator.clock import FixedClock
from emulator.testing import running_emulator
from pipelines.runner import run_daily
from tests.conftest import CORE_NOW, SHOP_END, SHOP_START, pipeline_resources


def test_daily_run_builds_checks_and_exports_every_mart(tmp_path, core_state, small_shop):
    warehouse = tmp_path / "w.duckdb"
    with running_emulator(core_state, clock=FixedClock(CORE_NOW)) as emu, \
            dg.DagsterInstance.ephemeral() as instance:
        result = run_daily(as_of=SHOP_END, instance=instance, warehouse_path=warehouse,
                           resources=pipeline_resources(emu, warehouse))
        assert result.success, result.summary()
        checks = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey(["marts", "daily_sales"]), "reconciles_with_raw"), limit=1)
        assert checks and checks[0].status.value == "SUCCEEDED"
    con = duckdb.connect(str(warehouse), read_only=True)
    days = (SHOP_END - SHOP_START).days + 1
    assert con.execute("SELECT count(*), min(sale_date), max(sale_date) FROM marts.daily_sales").fetchone() == (
        days, SHOP_START, SHOP_END)
    assert con.execute("SELECT sum(revenue) FROM marts.daily_sales").fetchone()[0] == con.execute(
        "SELECT sum(total_amount) FROM raw.sales").fetchone()[0]
    kpis = dict(con.execute("SELECT \"window\", revenue FROM marts.kpis WHERE as_of = ?", [SHOP_END]).fetchall())
    assert set(kpis) == {"7d", "28d", "mtd", "ytd", "all"}
    assert kpis["all"] == kpis["ytd"]  # the shop opened on Jan 1
    assert con.execute("SELECT count(DISTINCT as_of) FROM marts.kpis").fetchone()[0] == days
    assert con.execute("SELECT count(*) FROM marts.stock_status WHERE as_of = ?", [SHOP_END]).fetchone()[0] == len(
        small_shop.products)
    assert con.execute("SELECT count(*) FROM marts.customer_rfm").fetchone()[0] > 0
    # forecasts from the as-of day: TOTAL for the next 28 days, one chosen model per series
    total = con.execute("SELECT min(ds), max(ds), count(*) FROM ml.sales_forecast "
                        "WHERE as_of = ? AND series_id = 'TOTAL'", [SHOP_END]).fetchone()
    assert total == (date(2025, 7, 1), date(2025, 7, 28), 28)
    assert con.execute("SELECT count(*) FROM ml.forecast_backtest WHERE as_of = ? AND chosen "
                       "GROUP BY series_id HAVING count(*) <> 1", [SHOP_END]).fetchall() == []
    assert con.execute("SELECT count(DISTINCT series_id) FROM ml.sales_forecast").fetchone()[0] > 1
    tables = [r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'marts' ORDER BY 1").fetchall()]
    con.close()
    folder = tmp_path / "exports" / "marts"
    for table in tables:
        assert (folder / f"marts.{table}.parquet").exists(), table
        with open(folder / f"marts.{table}.csv", newline="") as fh:
            header = next(csv.reader(fh))
        assert header and header[0], table
    with open(folder / "marts.daily_sales.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["sale_date"] == str(SHOP_START) and len(rows) == days
