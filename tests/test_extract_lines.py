"""Every line from the core is checked, end to end through the emulator: line arithmetic and the
contract's ranges (named, never retried)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import date
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
