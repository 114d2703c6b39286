"""The extraction assets end to end against the emulator: exact rows, reruns, faults, kills."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb

from emulator.clock import FixedClock
from emulator.testing import running_emulator
from pipelines.runner import run_daily
from tests.conftest import CORE_NOW, SHOP_END, pipeline_resources

TABLES = {
    "raw.sales": "SELECT sale_id, sale_ts, sale_date, total_amount, customer_id FROM raw.sales ORDER BY 1",
    "raw.sale_items": "SELECT * FROM raw.sale_items ORDER BY sale_id, line_no",
    "raw.products": "SELECT * EXCLUDE (extracted_at) FROM raw.products ORDER BY sku",
    "raw.inventory": "SELECT * EXCLUDE (extracted_at) FROM raw.inventory ORDER BY sku",
    "raw.stock_snapshots": "SELECT * FROM raw.stock_snapshots ORDER BY ALL",
}


def dump(path: Path) -> dict[str, list]:
    """Every raw table's rows; a table not created yet counts as empty."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        out = {}
        for table, sql in TABLES.items():
            try:
                out[table] = con.execute(sql).fetchall()
            except duckdb.CatalogException:
                out[table] = []
        return out
    finally:
        con.close()


def run(emu, warehouse, as_of=SHOP_END, **kw):
    client_options = kw.pop("client_options", {})
    with dg.DagsterInstance.ephemeral() as instance:
        result = run_daily(as_of=as_of, instance=instance, warehouse_path=warehouse,
                           resources=pipeline_resources(emu, warehouse, **client_options), **kw)
    assert result.success, result.summary()
    return result


def expected_from_shop(shop):
    sales = shop.sales
    lines = sales.assign(line_total=(sales.quantity * sales.unit_price).round(2))
    return {
        "sales": sales.sale_id.nunique(),
        "lines": len(sales),
        "revenue": Decimal(str(round(lines.line_total.sum(), 2))).quantize(Decimal("0.01")),
        "units": int(sales.quantity.sum()),
    }


def test_first_run_loads_all_history_exactly(tmp_path, core_state, small_shop):
    warehouse = tmp_path / "w.duckdb"
    with running_emulator(core_state, clock=FixedClock(CORE_NOW)) as emu:
        result = run(emu, warehouse)
    want = expected_from_shop(small_shop)
    con = duckdb.connect(str(warehouse), read_only=True)
    got = con.execute(
        "SELECT (SELECT count(*) FROM raw.sales), count(*), sum(subtotal), sum(quantity) FROM raw.sale_items"
    ).fetchone()
    assert got == (want["sales"], want["lines"], want["revenue"], want["units"])
    assert con.execute("SELECT sum(total_amount) FROM raw.sales").fetchone()[0] == want["revenue"]
    assert con.execute("SELECT count(*) FROM raw.products").fetchone()[0] == len(small_shop.products)
    # the latest complete day's stock is recorded; sale ids follow time order
    assert con.execute("SELECT DISTINCT snapshot_date FROM raw.stock_snapshots").fetchall() == [(SHOP_END,)]
    assert con.execute(
        "SELECT bool_and(sale_ts >= prev) FROM (SELECT sale_ts, lag(sale_ts, 1, sale_ts) "
        "OVER (ORDER BY sale_id) AS prev FROM raw.sales)"
    ).fetchone()[0]
    # unknown costs come through as the core stores them: 0 and Uncategorized
    unknown = small_shop.products.cost.isna().sum()
    assert con.execute(
        "SELECT count(*) FROM raw.inventory WHERE cost = 0 AND category = 'Uncategorized'"
    ).fetchone()[0] == unknown
    con.close()
    assert result.start == date(2025, 1, 1) and result.end == SHOP_END


def test_second_run_changes_nothing_and_reads_only_the_tail(tmp_path, core_state):
    warehouse = tmp_path / "w.duckdb"
    with running_emulator(core_state, clock=FixedClock(CORE_NOW)) as emu:
        run(emu, warehouse)
        first = dump(warehouse)
        with dg.DagsterInstance.ephemeral() as instance:
            result = run_daily(as_of=SHOP_END, instance=instance, warehouse_path=warehouse,
                               resources=pipeline_resources(emu, warehouse))
            assert result.success and result.start == SHOP_END
            mats = instance.fetch_materializations(dg.AssetKey(["raw", "sales"]), limit=1).records
            meta = mats[0].asset_materialization.metadata
        assert meta["source"].value == "/sales/history?days=2"
        assert dump(warehouse) == first


def test_new_day_is_added_incrementally(tmp_path, core_state):
    warehouse = tmp_path / "w.duckdb"
    clock = FixedClock(CORE_NOW + timedelta(hours=9))
    with running_emulator(core_state, clock=clock) as emu:
        run(emu, warehouse)
        import httpx

        with httpx.Client(base_url=emu.url) as http:
            token = http.post("/api/v1/auth/login", json={"phoneNumber": emu.admin[0],
                                                           "password": emu.admin[1]}).json()["accessToken"]
            products = http.get("/api/v1/products", headers={"Authorization": f"Bearer {token}"}).json()
            in_stock = [p for p in products if p["stockQuantity"] > 2][:3]
            for p in in_stock:
                r = http.post("/api/v1/sales", headers={"Authorization": f"Bearer {token}"},
                              json={"items": [{"sku": p["sku"], "quantity": 1}]})
                assert r.status_code == 201
        clock.advance(days=1)  # 2025-07-02: the new sales' day is complete
        run(emu, warehouse, as_of=date(2025, 7, 1))
    con = duckdb.connect(str(warehouse), read_only=True)
    day = con.execute(
        "SELECT count(*), sum(total_amount) FROM raw.sales WHERE sale_date = DATE '2025-07-01'"
    ).fetchone()
    assert day[0] == 3
    assert day[1] == sum(Decimal(str(p["price"])).quantize(Decimal("0.01")) for p in in_stock)
    assert con.execute("SELECT count(DISTINCT snapshot_date) FROM raw.stock_snapshots").fetchone()[0] == 2


def test_faults_and_token_expiry_give_exactly_the_fault_free_rows(tmp_path, core_state, seeded_state_template):
    clean = tmp_path / "clean.duckdb"
    with running_emulator(core_state, clock=FixedClock(CORE_NOW)) as emu:
        run(emu, clean)
    faulty = tmp_path / "faulty.duckdb"
    state2 = tmp_path / "core2.sqlite3"
    state2.write_bytes(seeded_state_template.read_bytes())
    clock = FixedClock(CORE_NOW)
    stop = threading.Event()

    def age_tokens():  # the core's time runs fast: tokens (TTL 1 h) expire during the run
        last = datetime.combine(CORE_NOW.date(), datetime.max.time()) - timedelta(minutes=30)
        while not stop.wait(0.2):
            if clock.now() + timedelta(minutes=20) < last:  # stay within the core's day
                clock.advance(minutes=20)

    with running_emulator(state2, clock=clock, fault_rate=0.2, fault_seed=11, fault_timeout_s=1.0) as emu:
        ager = threading.Thread(target=age_tokens, daemon=True)
        ager.start()
        try:
            run(emu, faulty, client_options={"timeout_s": 0.5, "max_attempts": 30})
        finally:
            stop.set()
            ager.join()
        faults = emu.app.state.faults
    assert clock.now().date() == CORE_NOW.date(), "the test must stay within one core day"
    assert dump(faulty) == dump(clean)
    injected = getattr(faults, "injected", None) or getattr(faults, "counts", None)
    if injected is not None:
        assert sum(dict(injected).values()) > 0


def test_run_killed_midway_then_rerun_ends_correct(tmp_path, core_state):
    """Kill -9 the run at several moments of the sales step; no table is ever half-written,
    and a rerun ends with exactly the rows of an uninterrupted run."""
    reference = tmp_path / "ref.duckdb"
    # every answer of the core takes 0.5 s, so the kills below land before, during and after
    # the listing's transfer whatever the machine's speed
    with running_emulator(core_state, clock=FixedClock(CORE_NOW), latency_ms=500) as emu:
        run(emu, reference)
        want = dump(reference)
        env = {**os.environ, "SALESFLOW_CORE_URL": emu.url, "SALESFLOW_CORE_PHONE": emu.admin[0],
               "SALESFLOW_CORE_PASSWORD": emu.admin[1], "PYTHONPATH": str(Path.cwd())}
        env.pop("DAGSTER_HOME", None)
        killed_midway = 0
        # seconds after the sales step logs its plan: before the fetch, during it, while
        # staging and writing, after
        for i, delay in enumerate([0.0, 0.2, 0.4, 0.6, 1.0]):
            warehouse = tmp_path / f"killed{i}.duckdb"
            env["SALESFLOW_WAREHOUSE"] = str(warehouse)
            proc = subprocess.Popen(
                [sys.executable, "-m", "pipelines.cli", "materialize", "--as-of", str(SHOP_END)],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                start_new_session=True,
            )
            for line in proc.stderr:
                if "core today is" in line:  # the sales step is about to fetch
                    break
            time.sleep(delay)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            proc.stderr.close()
            partial = dump(warehouse) if warehouse.exists() else {t: [] for t in TABLES}
            for table, rows in partial.items():
                assert rows in ([], want[table]), f"{table} half-written after a kill at +{delay}s"
            if partial != want:
                killed_midway += 1
            run(emu, warehouse)
            assert dump(warehouse) == want
        assert killed_midway >= 2, f"only {killed_midway} kills landed before the run completed"


def test_malformed_sale_from_core_fails_clearly_and_lands_nothing(tmp_path, core_state):
    warehouse = tmp_path / "w.duckdb"
    with running_emulator(core_state, clock=FixedClock(CORE_NOW)) as emu:
        run(emu, warehouse)
        before = dump(warehouse)
        # corrupt one sale in the core's storage: its total no longer matches its items
        import sqlite3

        db = sqlite3.connect(core_state)
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        sales_table = next(t for t in tables if t.lower() in ("sales", "sale"))
        cols = [r[1] for r in db.execute(f"PRAGMA table_info({sales_table})")]
        total_col = next(c for c in cols if "total" in c.lower())
        sale_id = db.execute(f"SELECT max(id) FROM {sales_table}").fetchone()[0]
        db.execute(f"UPDATE {sales_table} SET {total_col} = {total_col} + 1 WHERE id = ?", [sale_id])
        db.commit()
        db.close()
        with dg.DagsterInstance.ephemeral() as instance:
            result = run_daily(as_of=SHOP_END, instance=instance, warehouse_path=warehouse,
                               resources=pipeline_resources(emu, warehouse))
    assert not result.success
    assert any(f"sale {sale_id} has totalAmount" in f for f in result.failures), result.failures
    assert dump(warehouse) == before
