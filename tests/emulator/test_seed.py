"""Seeding from canonical CSVs/frames, persistence across restarts, the history index."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from emulator.clock import FixedClock
from emulator.core import Core
from emulator.seed import SeedError, seed_csvs, seed_frames
from emulator.state import State

from .conftest import core_at, shop_products, shop_sales


def test_seed_keeps_history_and_does_not_deduct_stock(core):
    products = {p["sku"]: p for p in core.admin.get("/products").json()}
    # products.csv stock is today's stock, although history sold MUG-1 four times
    assert products["MUG-1"]["stockQuantity"] == 40 and products["PEN-1"]["stockQuantity"] == 10
    sales = core.admin.get("/sales").json()
    first = sales[0]
    assert first["saleDate"] == "2025-03-02T23:59:59.999"
    assert first["items"][1] == {
        "productId": 1, "productName": "Blue Mug", "sku": "MUG-1", "quantity": 1, "unitPrice": 11.0, "subtotal": 11.0,
    }
    assert first["totalAmount"] == 14.0  # 3 * 1.00 + 1 * 11.00, not today's prices
    assert sales[1]["customerId"] == "C-1"
    assert "customerId" not in first


def test_subtotals_round_half_up_per_line(tmp_path):
    sales = pd.DataFrame(
        {
            "sale_id": [1, 1],
            "sale_ts": ["2025-01-01T10:00:00", "2025-01-01T10:00:00"],
            "sku": ["PEN-1", "TEA-1"],
            "quantity": [3, 1],
            "unit_price": ["0.335", "0.125"],
            "customer_id": [None, None],
        }
    )
    seed_frames(tmp_path / "s.sqlite3", shop_products(), sales)
    core = Core(State(tmp_path / "s.sqlite3"), FixedClock(datetime(2025, 1, 2)))
    sale = core.sales_list(core.all_sales_query())[0]
    assert [i["subtotal"] for i in sale["items"]] == [1.01, 0.13]  # 1.005 -> 1.01, 0.125 -> 0.13
    assert sale["totalAmount"] == 1.14
    assert [i["unitPrice"] for i in sale["items"]] == [0.34, 0.13]


def test_seed_from_csv_files_and_errors_name_the_line(tmp_path):
    shop_products().to_csv(tmp_path / "products.csv", index=False)
    sales = shop_sales()
    sales.to_csv(tmp_path / "sales.csv", index=False)
    summary = seed_csvs(tmp_path / "a.sqlite3", tmp_path / "products.csv", tmp_path / "sales.csv")
    assert (summary.products, summary.sales, summary.sale_lines) == (4, 5, 7)

    bad = sales.copy()
    bad.loc[4, "sku"] = "GHOST"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(SeedError, match=r"bad\.csv line 6 .*GHOST"):
        seed_csvs(tmp_path / "b.sqlite3", tmp_path / "products.csv", tmp_path / "bad.csv")

    bad = sales.copy()
    bad.loc[2, "quantity"] = "1.5"
    with pytest.raises(SeedError, match="row 2 .*quantity"):
        seed_frames(tmp_path / "c.sqlite3", shop_products(), bad)
    dup = shop_products()
    dup.loc[3, "sku"] = "MUG-1"
    with pytest.raises(SeedError, match="line 5: sku 'MUG-1' already used on products.csv line 2"):
        dup.to_csv(tmp_path / "products.csv", index=False)
        seed_csvs(tmp_path / "d.sqlite3", tmp_path / "products.csv")
    with pytest.raises(SeedError, match="missing column"):
        seed_frames(tmp_path / "e.sqlite3", shop_products().drop(columns=["cost"]))


def test_seeding_a_seeded_state_is_an_error_unless_reset(seeded):
    with pytest.raises(SeedError, match="already"):
        seed_frames(seeded, shop_products(), shop_sales())
    summary = seed_frames(seeded, shop_products().head(2), None, reset=True)
    assert (summary.products, summary.sales) == (2, 0)


def test_zoned_timestamps_are_converted_to_shop_time(tmp_path):
    sales = pd.DataFrame(
        {
            "sale_id": ["x"],
            "sale_ts": ["2025-06-01T10:00:00+00:00"],
            "sku": ["PEN-1"],
            "quantity": ["1"],
            "unit_price": ["1.10"],
            "customer_id": [""],
        }
    )
    clock = FixedClock(datetime(2025, 6, 2), tz="Europe/Berlin")
    seed_frames(tmp_path / "s.sqlite3", shop_products(), sales, clock=clock)
    core = Core(State(tmp_path / "s.sqlite3"), clock)
    assert core.sales_list(core.all_sales_query())[0]["saleDate"] == "2025-06-01T12:00:00"


def test_state_persists_across_restarts(seeded, clock):
    with core_at(seeded, clock=clock) as c:
        sale = c.admin.post("/sales", json={"items": [{"sku": "BAG-1", "quantity": 2}]}).json()
        c.admin.post("/products", json={"name": "Lamp", "sku": "LAMP-1", "price": 20, "stockQuantity": 2})
    with core_at(seeded, clock=clock) as c:
        sales = c.admin.get("/sales").json()
        assert sales[-1] == sale
        assert c.admin.get("/products/by-sku/BAG-1").json()["stockQuantity"] == 1
        assert c.admin.get("/products/by-sku/LAMP-1").json()["price"] == 20
        assert c.admin.post("/sales", json={"items": [{"sku": "LAMP-1", "quantity": 1}]}).json()["id"] == sale["id"] + 1
    conn = sqlite3.connect(seeded)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_history_reads_only_the_tail_through_the_date_index(seeded, clock):
    core = Core(State(seeded), clock)
    conn = core.state.connect()
    for query in (core.history_query(7), core.today_query()):
        sql, params = core._sales_sql(query)
        plan = " | ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params))
        assert "USING INDEX idx_sales_date (sale_date>?" in plan, plan
        assert "TEMP B-TREE" not in plan, plan
    sql, params = core._sales_sql(core.all_sales_query())
    plan = " | ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params))
    assert "TEMP B-TREE" not in plan, plan
    conn.close()


@pytest.mark.slow
def test_large_listing_is_streamed_whole(tmp_path):
    # Its speed is measured by emulator/bench.py, not asserted here (this machine is shared).
    from emulator.bench import synthetic_frames

    products, sales = synthetic_frames(200_000, days=200)
    clock = FixedClock(datetime(2025, 7, 1, 9, 0), tz="UTC")
    summary = seed_frames(tmp_path / "big.sqlite3", products, sales, clock=clock)
    assert summary.sale_lines + summary.duplicate_lines == len(sales)  # a repeated line is kept once
    assert summary.sale_lines == len(sales.drop_duplicates())
    with core_at(tmp_path / "big.sqlite3", clock=clock) as c:
        lines = 0
        with c.admin.stream("GET", "/sales", timeout=60) as resp:
            assert resp.headers.get("content-length") is None  # streamed, not buffered
            body = resp.read()
        import orjson

        for s in orjson.loads(body):
            lines += len(s["items"])
        assert lines == summary.sale_lines
        tail = c.admin.get("/sales/history", params={"days": 2}).json()
        assert tail and all(s["saleDate"] >= "2025-06-29" for s in tail)


def _till_export(tmp_path):
    """A till's sales.csv as Excel saves it: BOM, CRLF, a receipt whose lines are a minute apart,
    a line printed twice."""
    rows = [
        "sale_id,sale_ts,sku,quantity,unit_price,customer_id",
        "R-2,2025-03-05 16:58:00,TEA-1,1,4.20,",        # the receipt's later lines come first
        "R-1,2025-03-05 09:00:00,PEN-1,2,1.10,C-9",
        "R-2,2025-03-05 16:57:00,MUG-1,1,12.50,",
        "R-2,2025-03-05 16:57:00,PEN-1,1,1.10,",
        "R-3,2025-03-05 16:57:30,BAG-1,1,9.99,C-7",
        "R-1,2025-03-05 09:00:00,PEN-1,2,1.10,C-9",      # exact duplicate of line 3
        "R-3,2025-03-05 16:59:00,TEA-1,2,4.20,C-7",
    ]
    path = tmp_path / "sales.csv"
    path.write_bytes(("\ufeff" + "\r\n".join(rows) + "\r\n").encode("utf-8"))
    shop_products().to_csv(tmp_path / "products.csv", index=False, lineterminator="\r\n",
                           encoding="utf-8-sig")
    return tmp_path / "products.csv", path


def test_real_till_export_seeds_with_earliest_time_and_duplicates_kept_once(tmp_path):
    products_csv, sales_csv = _till_export(tmp_path)
    summary = seed_csvs(tmp_path / "s.sqlite3", products_csv, sales_csv)
    assert (summary.products, summary.sales, summary.sale_lines) == (4, 3, 6)
    assert summary.duplicate_lines == 1 and summary.retimed_sales == 2
    notes = " | ".join(summary.notes)
    assert "sales.csv line 7 repeats line 3" in notes, notes
    assert "R-2" in notes and "earliest" in notes, notes
    core = Core(State(tmp_path / "s.sqlite3"), FixedClock(datetime(2025, 3, 6)))
    sales = core.sales_list(core.all_sales_query())
    # ids in time order by each receipt's earliest line; every line stays with its receipt
    assert [(s["saleDate"], len(s["items"]), s["totalAmount"]) for s in sales] == [
        ("2025-03-05T09:00:00", 1, 2.2),      # the duplicate line is not counted twice
        ("2025-03-05T16:57:00", 3, 17.8),     # R-2 at its first line's minute
        ("2025-03-05T16:57:30", 2, 18.39),
    ]
    assert sales[0].get("customerId") == "C-9" and [i["sku"] for i in sales[0]["items"]] == ["PEN-1"]


def test_bom_and_crlf_files_read_like_plain_ones(tmp_path):
    products_csv, sales_csv = _till_export(tmp_path)
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "products.csv").write_text(products_csv.read_text(encoding="utf-8-sig").replace("\r\n", "\n"))
    (plain / "sales.csv").write_text(sales_csv.read_text(encoding="utf-8-sig").replace("\r\n", "\n"))
    a = seed_csvs(tmp_path / "a.sqlite3", products_csv, sales_csv)
    b = seed_csvs(tmp_path / "b.sqlite3", plain / "products.csv", plain / "sales.csv")
    assert (a.products, a.sales, a.sale_lines, a.first_sale, a.last_sale) == \
        (b.products, b.sales, b.sale_lines, b.first_sale, b.last_sale)
    clock = FixedClock(datetime(2025, 3, 6))
    dump = [Core(State(tmp_path / f), clock).sales_list(Core(State(tmp_path / f), clock).all_sales_query())
            for f in ("a.sqlite3", "b.sqlite3")]
    assert dump[0] == dump[1] and all("\r" not in i["sku"] for s in dump[0] for i in s["items"])


def test_a_bad_timestamp_on_any_line_of_a_sale_is_named(tmp_path):
    sales = shop_sales()
    sales.loc[6, "sale_ts"] = "not a time"  # the second line of s-b
    with pytest.raises(SeedError, match=r"row 6 \(sale_id s-b\): sale_ts 'not a time' is not a timestamp"):
        seed_frames(tmp_path / "s.sqlite3", shop_products(), sales)


ONLINE_RETAIL = Path("/work/shared/data/online_retail/online_retail.csv.gz")


@pytest.mark.skipif(not ONLINE_RETAIL.is_file(), reason="the shared Online Retail export is not on this machine")
def test_a_slice_of_the_online_retail_export_seeds(tmp_path):
    from emulator.online_retail import write_canonical_csvs

    conversion = write_canonical_csvs(ONLINE_RETAIL, tmp_path, rows=3000)
    assert conversion.cancellations > 0  # what the core cannot hold is left out, and counted
    summary = seed_csvs(tmp_path / "s.sqlite3", tmp_path / "products.csv", tmp_path / "sales.csv")
    kept = conversion.sales
    assert summary.sales == kept["sale_id"].nunique()
    assert summary.duplicate_lines == int(kept.duplicated().sum()) > 0
    assert summary.sale_lines == len(kept) - summary.duplicate_lines
    assert summary.retimed_sales >= 1  # invoice 536591: lines at 16:57 and 16:58
    core = Core(State(tmp_path / "s.sqlite3"), FixedClock(datetime(2011, 12, 10)))
    sales = core.sales_list(core.all_sales_query())
    stamps = kept.groupby("sale_id")["sale_ts"].agg(["min", "size"])
    assert sorted(s["saleDate"] for s in sales) == sorted(stamps["min"])
    lines_536591 = kept[kept.sale_id == "536591"].drop_duplicates()
    sale = next(s for s in sales if s["saleDate"] == "2010-12-01T16:57:00" and len(s["items"]) == len(lines_536591))
    assert {i["sku"] for i in sale["items"]} == set(lines_536591.sku)
