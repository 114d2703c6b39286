"""Every line from the core is checked, end to end through the emulator: line arithmetic, the
contract's ranges (named, never retried) and sales whose day changed in the core."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import duckdb
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from assets.extract import raw_inventory, raw_products, raw_sales
from emulator.clock import FixedClock
from emulator.testing import running_emulator
from tests.conftest import CORE_NOW, SHOP_END, pipeline_resources

EXTRACT = [raw_products, raw_inventory, raw_sales]


def extract(emu, warehouse: Path, first: date, last: date | None = None) -> dg.ExecuteInProcessResult:
    tags = {ASSET_PARTITION_RANGE_START_TAG: str(first), ASSET_PARTITION_RANGE_END_TAG: str(last or first)}
    return dg.materialize(EXTRACT, resources=pipeline_resources(emu, warehouse), tags=tags,
                          raise_on_error=False)


def check(result, name: str):
    found = [e for e in result.get_asset_check_evaluations() if e.check_name == name]
    assert len(found) == 1, [e.check_name for e in result.get_asset_check_evaluations()]
    return found[0]


def failure_and_retries(result) -> tuple[str, int]:
    failures = [e.step_failure_data.error.message for e in result.get_step_failure_events()]
    retries = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    return "\n".join(failures), len(retries)


def core_sql(emu, sql: str, params=()) -> list[tuple]:
    with closing(sqlite3.connect(emu.state_path)) as db, db:
        return db.execute(sql, params).fetchall()


def warehouse_rows(warehouse: Path, sql: str, params=()) -> list[tuple]:
    with closing(duckdb.connect(str(warehouse), read_only=True)) as con:
        return con.execute(sql, params).fetchall()


def raw_sales_rows(warehouse: Path) -> list[tuple]:
    return warehouse_rows(warehouse, "SELECT s.*, i.* FROM raw.sales s JOIN raw.sale_items i USING (sale_id) "
                                     "ORDER BY ALL")


def test_sale_moved_out_of_its_day_is_named_and_never_lost(tmp_path, core_state):
    warehouse = tmp_path / "w.duckdb"
    clock = FixedClock(CORE_NOW)
    day_of = "SELECT sale_date FROM raw.sales WHERE sale_id = ?"
    with running_emulator(core_state, clock=clock) as emu:
        assert extract(emu, warehouse, SHOP_END - timedelta(days=2), SHOP_END).success
        # the core moves the last sale of 2025-06-30 to 2025-07-02, two days later
        (sale_id,), = core_sql(emu, "SELECT max(id) FROM sales WHERE sale_date LIKE '2025-06-30%'")
        core_sql(emu, "UPDATE sales SET sale_date = '2025-07-02T10:15:00' WHERE id = ?", [sale_id])
        lines = core_sql(emu, "SELECT count(*) FROM sale_items WHERE sale_id = ?", [sale_id])[0][0]
        clock.advance(days=2)  # 2025-07-03 00:30: 2025-07-02 is complete

        # a rerun of its old day neither drops it nor passes over it
        result = extract(emu, warehouse, SHOP_END)
        assert result.success
        assert warehouse_rows(warehouse, day_of, [sale_id]) == [(date(2025, 6, 30),)]
        moved = check(result, "sales_keep_their_day")
        assert not moved.passed and moved.severity == dg.AssetCheckSeverity.WARN
        assert moved.metadata["examples"].value == [
            f"sale {sale_id} moved from 2025-06-30 to 2025-07-02, after 2025-06-30: kept under "
            "2025-06-30 until 2025-07-02 is extracted"]
        reconciled = check(result, "reconciles_with_core")
        assert reconciled.passed and reconciled.metadata["held_sales"].value == [sale_id]

        # the next daily partition: the sale's new day still lies after its range
        result = extract(emu, warehouse, date(2025, 7, 1))
        assert result.success and not check(result, "sales_keep_their_day").passed
        assert warehouse_rows(warehouse, day_of, [sale_id]) == [(date(2025, 6, 30),)]

        # its new day's partition moves it there, and names the old day whose marts changed
        result = extract(emu, warehouse, date(2025, 7, 2))
        assert result.success
        moved = check(result, "sales_keep_their_day")
        assert moved.metadata["examples"].value == [f"sale {sale_id} moved from 2025-06-30 to 2025-07-02"]
        assert moved.metadata["days_to_rebuild"].value == ["2025-06-30"]
        assert warehouse_rows(warehouse, day_of, [sale_id]) == [(date(2025, 7, 2),)]
        assert warehouse_rows(warehouse, "SELECT count(*) FROM raw.sale_items WHERE sale_id = ?",
                              [sale_id]) == [(lines,)]
        # once in place, the next run has nothing to report
        assert check(extract(emu, warehouse, date(2025, 7, 2)), "sales_keep_their_day").passed


def test_contract_breaks_name_the_sale_or_product_and_are_not_retried(tmp_path, core_state):
    warehouse = tmp_path / "w.duckdb"
    with running_emulator(core_state, clock=FixedClock(CORE_NOW)) as emu:
        assert extract(emu, warehouse, SHOP_END).success
        before = raw_sales_rows(warehouse)
        (sale_id, price, qty, subtotal, total), = core_sql(
            emu, "SELECT i.sale_id, i.unit_price_cents, i.quantity, i.subtotal_cents, s.total_cents "
                 "FROM sale_items i JOIN sales s ON s.id = i.sale_id WHERE i.line_no = 1 "
                 "AND s.sale_date LIKE '2025-06-30%' ORDER BY i.sale_id DESC LIMIT 1")
        line = "sale_id = ? AND line_no = 1"

        # a subtotal one unit price too high; the sale's total follows its lines
        core_sql(emu, f"UPDATE sale_items SET subtotal_cents = ? WHERE {line}", [subtotal + price, sale_id])
        core_sql(emu, "UPDATE sales SET total_cents = ? WHERE id = ?", [total + price, sale_id])
        message, retries = failure_and_retries(extract(emu, warehouse, SHOP_END))
        want = f"{qty} x {price / 100:.2f} = {qty * price / 100:.2f}"
        assert f"sale {sale_id} line 1 has subtotal {(subtotal + price) / 100:.2f} but {want}" in message
        assert retries == 0

        # a quantity beyond the core's int (3e9 units at 0.01 stay legal money)
        big = 3_000_000_000
        core_sql(emu, f"UPDATE sale_items SET quantity = ?, unit_price_cents = 1, subtotal_cents = ? "
                      f"WHERE {line}", [big, big, sale_id])
        core_sql(emu, "UPDATE sales SET total_cents = ? WHERE id = ?", [total - subtotal + big, sale_id])
        message, retries = failure_and_retries(extract(emu, warehouse, SHOP_END))
        assert f"sale {sale_id} line 1 has quantity 3000000000" in message, message
        assert retries == 0
        assert raw_sales_rows(warehouse) == before

        # a product's stock beyond the core's int
        core_sql(emu, f"UPDATE sale_items SET quantity = ?, unit_price_cents = ?, subtotal_cents = ? "
                      f"WHERE {line}", [qty, price, subtotal, sale_id])
        core_sql(emu, "UPDATE sales SET total_cents = ? WHERE id = ?", [total, sale_id])
        (sku,), = core_sql(emu, "SELECT sku FROM products ORDER BY id LIMIT 1")
        core_sql(emu, "UPDATE products SET stock_quantity = ? WHERE sku = ?", [big, sku])
        message, retries = failure_and_retries(extract(emu, warehouse, SHOP_END))
        assert f"(sku={sku!r}) has stockQuantity 3000000000" in message, message
        assert retries == 0
