"""Staging, validation and rerun-safe writes of sales listings (no network)."""

import json
from datetime import date
from decimal import Decimal

import orjson
import pytest

from salesflow import extract
from salesflow.errors import CoreDataError
from salesflow.warehouse import connect


def sale(sale_id, ts, items, total=None, customer=None):
    body = {
        "id": sale_id,
        "saleDate": ts,
        "totalAmount": total if total is not None else round(sum(i["subtotal"] for i in items), 2),
        "items": items,
    }
    if customer:
        body["customerId"] = customer
    return body


def item(sku, qty, price, pid=1, name=None):
    return {"productId": pid, "productName": name or f"Product {sku}", "sku": sku,
            "quantity": qty, "unitPrice": price, "subtotal": round(qty * price, 2)}


@pytest.fixture
def con(tmp_path):
    with connect(tmp_path / "w.duckdb") as c:
        yield c


def write_json(tmp_path, payload, name="sales.json"):
    path = tmp_path / name
    path.write_bytes(payload if isinstance(payload, bytes) else orjson.dumps(payload))
    return path


GOOD = [
    sale(1, "2025-03-01T09:15:00", [item("A", 2, 1.10), item("B", 1, 5.25)], customer="C1"),
    sale(2, "2025-03-01T23:59:59.999", [item("A", 1, 1.10)]),
    sale(3, "2025-03-02T00:00:00.123456789", [item("C", 3, 0.35)]),
]


def test_stage_and_write_exact_money(tmp_path, con):
    staged = extract.stage_sales(con, write_json(tmp_path, GOOD))
    assert (staged.sales, staged.lines) == (3, 4)
    assert (staged.first_date, staged.last_date) == (date(2025, 3, 1), date(2025, 3, 2))
    w = extract.write_sales_range(con, date(2025, 3, 1), date(2025, 3, 2))
    assert (w.sales, w.lines) == (3, 4)
    rows = con.execute("SELECT sale_id, sale_date, total_amount, customer_id FROM raw.sales ORDER BY 1").fetchall()
    assert rows == [
        (1, date(2025, 3, 1), Decimal("7.45"), "C1"),
        (2, date(2025, 3, 1), Decimal("1.10"), None),
        (3, date(2025, 3, 2), Decimal("1.05"), None),
    ]
    assert con.execute("SELECT sum(subtotal) FROM raw.sale_items").fetchone()[0] == Decimal("9.60")
    assert con.execute("SELECT line_no FROM raw.sale_items WHERE sale_id=1 ORDER BY 1").fetchall() == [(1,), (2,)]
    assert extract.reconcile_sales(con, date(2025, 3, 1), date(2025, 3, 2)) == []


def test_rerun_and_overlap_never_duplicate(tmp_path, con):
    path = write_json(tmp_path, GOOD)
    for _ in range(3):
        extract.stage_sales(con, path)
        extract.write_sales_range(con, date(2025, 3, 1), date(2025, 3, 2))
    # an overlapping later window that also carries day 1
    extract.stage_sales(con, path)
    extract.write_sales_range(con, date(2025, 3, 2), date(2025, 3, 2))
    assert con.execute("SELECT count(*), count(DISTINCT sale_id) FROM raw.sales").fetchone() == (3, 3)
    assert con.execute("SELECT count(*) FROM raw.sale_items").fetchone()[0] == 4


def test_range_write_only_touches_its_days(tmp_path, con):
    extract.stage_sales(con, write_json(tmp_path, GOOD))
    w = extract.write_sales_range(con, date(2025, 3, 2), date(2025, 3, 2))
    assert (w.sales, w.lines, w.outside_range) == (1, 1, 2)
    assert con.execute("SELECT list(sale_id) FROM raw.sales").fetchone()[0] == [3]


def test_sale_removed_from_source_is_removed_on_rerun(tmp_path, con):
    extract.stage_sales(con, write_json(tmp_path, GOOD))
    extract.write_sales_range(con, date(2025, 3, 1), date(2025, 3, 2))
    extract.stage_sales(con, write_json(tmp_path, GOOD[1:], "b.json"))
    extract.write_sales_range(con, date(2025, 3, 1), date(2025, 3, 2))
    assert con.execute("SELECT list(sale_id ORDER BY sale_id) FROM raw.sales").fetchone()[0] == [2, 3]
    assert con.execute("SELECT count(*) FROM raw.sale_items WHERE sale_id = 1").fetchone()[0] == 0


def test_reloading_days_keeps_sales_imported_from_another_till(tmp_path, con):
    """Historical sales imported from a spreadsheet carry negative ids; the core's listing
    neither has nor removes them, and reconciliation with the core leaves them out."""
    con.execute("INSERT INTO raw.sales VALUES (-42, '2025-03-01 10:00', '2025-03-01', 5.00, 'c9', now())")
    con.execute("INSERT INTO raw.sale_items VALUES (-42, 1, NULL, 'OLD-1', 'Old till item', 1, 5.00, 5.00)")
    extract.stage_sales(con, write_json(tmp_path, GOOD))
    extract.write_sales_range(con, date(2025, 3, 1), date(2025, 3, 2))
    assert con.execute("SELECT list(sale_id ORDER BY sale_id) FROM raw.sales").fetchone()[0] == [-42, 1, 2, 3]
    assert con.execute("SELECT count(*) FROM raw.sale_items WHERE sale_id = -42").fetchone()[0] == 1
    assert extract.reconcile_sales(con, date(2025, 3, 1), date(2025, 3, 2)) == []


@pytest.mark.parametrize(
    "payload, expected",
    [
        (b'[{"id": 1, "saleDate": "2025-03-01T09:00:00", "totalAmount": 1', "malformed JSON"),
        (orjson.dumps([GOOD[0], {"id": 7, "saleDate": "2025-03-01T10:00:00", "items": []}]),
         "id=7"),
        (orjson.dumps([GOOD[0], sale(8, "2025-03-01T10:00:00", [{"productId": 1, "sku": "A",
                                                                 "quantity": 1, "unitPrice": 1.0}],
                                     total=1.0)]),
         "id=8"),
        (orjson.dumps([sale(9, "2025-03-01T10:00:00", [item("A", 1, 2.0)], total=2.01)]),
         "sale 9 has totalAmount 2.01 but its items add up to 2.00"),
        (orjson.dumps([sale(10, "2025-03-01T10:00:00", [item("A", 1, -2.0)])]), "sale 10 has negative money"),
        (orjson.dumps([sale(11, "yesterday", [item("A", 1, 2.0)])]), "sale 11 has an unreadable saleDate"),
        (orjson.dumps([sale(12, "2025-03-01T10:00:00", [item("A", 0, 2.0)])]), "sale 12 line 1 has quantity 0"),
        (orjson.dumps([GOOD[0], GOOD[0]]), "sale 1 appears 2 times"),
        (orjson.dumps([sale(13, "2025-03-01T10:00:00", [item("A", 1, 2.005)], total=2.005)]),
         "more than 2 decimals"),
        (orjson.dumps([sale(14, "2025-03-01T10:00:00", [])]), "sale 14 has no items"),
        (orjson.dumps({"error": "not a list"}), "not valid"),
        (orjson.dumps([{"id": "x15", "saleDate": "2025-03-01T10:00:00", "totalAmount": 1,
                        "items": []}]), "not valid"),
    ],
)
def test_bad_listing_names_the_record_and_writes_nothing(tmp_path, con, payload, expected):
    extract.stage_sales(con, write_json(tmp_path, GOOD, "good.json"))
    extract.write_sales_range(con, date(2025, 3, 1), date(2025, 3, 2))
    before = con.execute("SELECT count(*), sum(total_amount) FROM raw.sales").fetchone()
    with pytest.raises(CoreDataError) as err:
        extract.stage_sales(con, write_json(tmp_path, payload))
    assert expected in str(err.value)
    assert con.execute("SELECT count(*), sum(total_amount) FROM raw.sales").fetchone() == before


def test_failed_write_rolls_back(tmp_path, con, monkeypatch):
    extract.stage_sales(con, write_json(tmp_path, GOOD))
    extract.write_sales_range(con, date(2025, 3, 1), date(2025, 3, 2))
    extract.stage_sales(con, write_json(tmp_path, GOOD[:1], "one.json"))
    con.execute("DROP TABLE _staged_items")  # the item insert will fail after the deletes
    with pytest.raises(Exception):
        extract.write_sales_range(con, date(2025, 3, 1), date(2025, 3, 2))
    assert con.execute("SELECT count(*) FROM raw.sales").fetchone()[0] == 3
    assert con.execute("SELECT count(*) FROM raw.sale_items").fetchone()[0] == 4


def test_plan_sales_fetch():
    today = date(2025, 6, 10)
    assert extract.plan_sales_fetch(date(2025, 6, 9), today) == extract.SalesFetchPlan("history", 2)
    assert extract.plan_sales_fetch(date(2025, 6, 9), today, overlap_days=3).days == 4
    assert extract.plan_sales_fetch(date(2020, 1, 1), today).mode == "full"
    assert extract.plan_sales_fetch(date(2025, 2, 10), today, full_after_days=120).mode == "full"
    assert extract.plan_sales_fetch(date(2025, 2, 11), today, full_after_days=120).mode == "history"


def test_products_frame_rejects_contract_breaks():
    good = [{"id": 1, "name": "Tea", "sku": "T1", "price": 2.5, "stockQuantity": 3,
             "lowStockThreshold": 5, "description": None, "imageUrl": None}]
    frame = extract.products_frame(orjson.dumps(good))
    assert list(frame["sku"]) == ["T1"] and list(frame["price"]) == ["2.5"]
    with pytest.raises(CoreDataError, match=r"sku='T2'.*negative price"):
        extract.products_frame(orjson.dumps(good + [{**good[0], "id": 2, "sku": "T2", "price": -1}]))
    with pytest.raises(CoreDataError, match=r"record #1 \(sku='T3'\).*stockQuantity"):
        extract.products_frame(orjson.dumps(good + [{"id": 3, "name": "X", "sku": "T3", "price": 1}]))
    with pytest.raises(CoreDataError, match="repeats a sku"):
        extract.products_frame(orjson.dumps(good + good))


def test_snapshot_tables_replace_atomically(tmp_path, con):
    good = [{"id": 1, "name": "Tea", "sku": "T1", "price": 2.5, "stockQuantity": 3, "lowStockThreshold": 5}]
    extract.replace_table(con, "raw.products", extract.products_frame(orjson.dumps(good)))
    extract.replace_table(con, "raw.products", extract.products_frame(orjson.dumps(good)))
    assert con.execute("SELECT sku, price, stock_quantity FROM raw.products").fetchall() == [
        ("T1", Decimal("2.50"), 3)]
    assert extract.write_stock_snapshot(con, date(2025, 1, 1)) == 1
    assert extract.write_stock_snapshot(con, date(2025, 1, 1)) == 1


# -- every line is checked: arithmetic and the contract's ranges --------------------------
INT_MAX = 2**31 - 1
LONG_MAX = 2**63 - 1


def raw_item(qty, price, subtotal, pid=1, sku="A"):
    return {"productId": pid, "productName": f"Product {sku}", "sku": sku,
            "quantity": qty, "unitPrice": price, "subtotal": subtotal}


@pytest.mark.parametrize(
    "payload, expected",
    [
        # the sale's total matches its lines, but a line's subtotal is not 2 x 14.50
        ([sale(20, "2025-03-01T10:00:00", [raw_item(2, 14.50, 30.00), raw_item(1, 1.00, 1.00)])],
         "sale 20 line 1 has subtotal 30.00 but 2 x 14.50 = 29.00"),
        ([sale(21, "2025-03-01T10:00:00", [raw_item(1, 1.00, 1.00), raw_item(3, 0.10, 0.31)])],
         "sale 21 line 2 has subtotal 0.31 but 3 x 0.10 = 0.30"),
        ([sale(22, "2025-03-01T10:00:00", [raw_item(INT_MAX + 1, 0.01, 21474836.48)])],
         "sale 22 line 1 has quantity 2147483648"),
        ([sale(23, "2025-03-01T10:00:00", [raw_item(2.5, 2.00, 5.00)])],
         "sale 23 line 1 has quantity 2.5"),
        ([sale(24, "2025-03-01T10:00:00", [raw_item(-3, 2.00, -6.00)])],
         "sale 24 line 1 has quantity -3"),
        ([sale(25, "2025-03-01T10:00:00", [raw_item(1e20, 0.00, 0.00)])],
         "sale 25 line 1 has quantity 1e+20"),
        ([sale(26, "2025-03-01T10:00:00", [raw_item(1, 1e13, 1e13)])],
         "sale 26 line 1 has unitPrice 10000000000000.00 beyond"),
        ([sale(27, "2025-03-01T10:00:00", [raw_item(1, 1.00, 1.00)], total=1e20)],
         "sale 27 has totalAmount 1e+20 beyond"),
        ([sale(0, "2025-03-01T10:00:00", [raw_item(1, 1.00, 1.00)])], "sale 0 has id 0"),
        ([sale(28, "2025-03-01T10:00:00", [raw_item(1, 1.00, 1.00, pid=0)])],
         "sale 28 line 1 has productId 0"),
        # beyond BIGINT: the JSON reader cannot hold it; the error still names the sale
        ([sale(2**64, "2025-03-01T10:00:00", [raw_item(1, 1.00, 1.00)])],
         "id=18446744073709551616"),
        ([sale(29, "2025-03-01T10:00:00", [raw_item(1, 1.00, 1.00, pid=2**64)])], "id=29"),
    ],
)
def test_line_contract_breaks_name_the_sale_and_line(tmp_path, con, payload, expected):
    with pytest.raises(CoreDataError) as err:  # json: orjson refuses ints beyond 64 bits
        extract.stage_sales(con, write_json(tmp_path, json.dumps(payload).encode()))
    assert expected in str(err.value)
    assert con.execute("SELECT count(*) FROM raw.sales").fetchone()[0] == 0


def test_legal_extremes_of_the_contract_land_exactly(tmp_path, con):
    """Java int quantities, Java long ids and NUMERIC(12,2) money, including amounts whose
    double is not exact at the cent (1234567890.13)."""
    listing = [
        sale(LONG_MAX, "2025-03-01T10:00:00", [raw_item(INT_MAX, 0.01, 21474836.47, pid=LONG_MAX)]),
        sale(40, "2025-03-01T11:00:00", [raw_item(1, 9999999999.99, 9999999999.99)]),
        sale(41, "2025-03-01T12:00:00", [raw_item(1, 1234567890.13, 1234567890.13),
                                         raw_item(3, 3333333.33, 9999999.99)]),
    ]
    extract.stage_sales(con, write_json(tmp_path, orjson.dumps(listing)))
    w = extract.write_sales_range(con, date(2025, 3, 1), date(2025, 3, 1))
    assert (w.sales, w.lines) == (3, 4)
    assert con.execute("SELECT sale_id, total_amount FROM raw.sales ORDER BY 1").fetchall() == [
        (40, Decimal("9999999999.99")), (41, Decimal("1244567890.12")), (LONG_MAX, Decimal("21474836.47"))]
    assert con.execute(
        "SELECT product_id, quantity, unit_price FROM raw.sale_items WHERE sale_id = ?", [LONG_MAX]
    ).fetchone() == (LONG_MAX, INT_MAX, Decimal("0.01"))
    assert extract.reconcile_sales(con, date(2025, 3, 1), date(2025, 3, 1)) == []
    checks = extract.sales_check_results(con, date(2025, 3, 1), date(2025, 3, 1))
    assert all(c["passed"] for name, c in checks.items() if name != "sold_skus_known"), checks


def test_line_arithmetic_is_a_blocking_check_on_the_warehouse(tmp_path, con):
    extract.stage_sales(con, write_json(tmp_path, GOOD))
    extract.write_sales_range(con, date(2025, 3, 1), date(2025, 3, 2))
    # a line that reached raw.* another way (e.g. an older load)
    con.execute("UPDATE raw.sale_items SET subtotal = 2.30 WHERE sale_id = 1 AND line_no = 1")
    con.execute("UPDATE raw.sales SET total_amount = 7.55 WHERE sale_id = 1")
    checks = extract.sales_check_results(con, date(2025, 3, 1), date(2025, 3, 2))
    assert checks["items_add_up_to_total"]["passed"]
    assert not checks["line_subtotals_match"]["passed"]
    assert checks["line_subtotals_match"]["examples"] == ["sale 1 line 1: subtotal 2.30 but 2 x 1.10 = 2.20"]


PRODUCT = {"id": 1, "name": "Tea", "sku": "T1", "price": 2.5, "stockQuantity": 3, "lowStockThreshold": 5}
ITEM = {"id": 1, "sku": "T1", "name": "Tea", "quantity": 3, "price": 2.5, "cost": 1.25,
        "category": "Drinks", "updatedAt": "2025-03-01T10:00:00Z"}


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"stockQuantity": INT_MAX + 1}, r"sku='T2'.*stockQuantity 2147483648"),
        ({"lowStockThreshold": INT_MAX + 1}, r"sku='T2'.*lowStockThreshold 2147483648"),
        ({"price": 1e13}, r"sku='T2'.*price 10000000000000.0 beyond"),
        ({"price": 2.555}, r"sku='T2'.*price 2.555 with more than 2 decimals"),
        ({"id": 2**63}, r"sku='T2'.*id 9223372036854775808"),
        ({"id": 0}, r"sku='T2'.*id 0"),
    ],
)
def test_products_out_of_range_name_the_product(change, expected):
    bad = {**PRODUCT, "id": 2, "sku": "T2", "name": "Coffee", **change}
    with pytest.raises(CoreDataError, match=expected):
        extract.products_frame(json.dumps([PRODUCT, bad]).encode())


def test_products_and_inventory_at_the_contract_limits_land(tmp_path, con):
    top = {**PRODUCT, "id": LONG_MAX, "price": 9999999999.99, "stockQuantity": INT_MAX,
           "lowStockThreshold": INT_MAX}
    extract.replace_table(con, "raw.products", extract.products_frame(orjson.dumps([top])))
    assert con.execute("SELECT id, price, stock_quantity, low_stock_threshold FROM raw.products").fetchall() == [
        (LONG_MAX, Decimal("9999999999.99"), INT_MAX, INT_MAX)]
    item = {**ITEM, "quantity": INT_MAX, "price": 9999999999.99, "cost": 9999999999.99}
    extract.replace_table(con, "raw.inventory", extract.inventory_frame(orjson.dumps([item])))
    assert con.execute("SELECT quantity, cost FROM raw.inventory").fetchall() == [(INT_MAX, Decimal("9999999999.99"))]


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"quantity": INT_MAX + 1}, r"sku='T2'.*quantity 2147483648"),
        ({"quantity": -1}, r"sku='T2'.*quantity -1"),
        ({"cost": 1e13}, r"sku='T2'.*cost 10000000000000.0 beyond"),
        ({"id": 2**63}, r"sku='T2'.*id 9223372036854775808"),
    ],
)
def test_inventory_out_of_range_names_the_item(change, expected):
    bad = {**ITEM, "id": 2, "sku": "T2", "name": "Coffee", **change}
    with pytest.raises(CoreDataError, match=expected):
        extract.inventory_frame(json.dumps([ITEM, bad]).encode())


# -- a sale whose day changed in the core is never silently dropped ------------------------
def load_good(tmp_path, con):
    extract.stage_sales(con, write_json(tmp_path, GOOD, "good.json"))
    extract.write_sales_range(con, date(2025, 3, 1), date(2025, 3, 2))


def moved(sale_id, ts):
    return [{**s, "saleDate": ts} if s["id"] == sale_id else s for s in GOOD]


def sales_by_day(con):
    return con.execute("SELECT sale_id, sale_date FROM raw.sales ORDER BY 1").fetchall()


def test_sale_moved_after_the_range_is_kept_until_its_new_day_is_extracted(tmp_path, con):
    load_good(tmp_path, con)
    extract.stage_sales(con, write_json(tmp_path, moved(2, "2025-03-05T08:00:00")))
    w = extract.write_sales_range(con, date(2025, 3, 1), date(2025, 3, 1))
    # kept under its old day, lines included; reconciliation accounts for it by name
    assert sales_by_day(con) == [(1, date(2025, 3, 1)), (2, date(2025, 3, 1)), (3, date(2025, 3, 2))]
    assert con.execute("SELECT count(*) FROM raw.sale_items WHERE sale_id = 2").fetchone()[0] == 1
    assert w.held_ids == [2] and w.move_counts == {"held": 1}
    assert extract.reconcile_sales(con, date(2025, 3, 1), date(2025, 3, 1), w.held_ids) == []
    check = extract.moved_sales_check(w, date(2025, 3, 1))
    assert not check["passed"]
    assert check["examples"] == [
        "sale 2 moved from 2025-03-01 to 2025-03-05, after 2025-03-01: kept under 2025-03-01 "
        "until 2025-03-05 is extracted"]
    # its new day's run moves it there and names the old day, whose marts are now stale
    w = extract.write_sales_range(con, date(2025, 3, 5), date(2025, 3, 5))
    assert sales_by_day(con) == [(1, date(2025, 3, 1)), (2, date(2025, 3, 5)), (3, date(2025, 3, 2))]
    check = extract.moved_sales_check(w, date(2025, 3, 5))
    assert check["examples"] == ["sale 2 moved from 2025-03-01 to 2025-03-05"]
    assert check["days_to_rebuild"] == ["2025-03-01"]
    assert extract.reconcile_sales(con, date(2025, 3, 1), date(2025, 3, 5)) == []


def test_sale_moved_before_the_range_lives_under_its_new_day(tmp_path, con):
    load_good(tmp_path, con)
    extract.stage_sales(con, write_json(tmp_path, moved(3, "2025-03-01T18:00:00")))
    w = extract.write_sales_range(con, date(2025, 3, 2), date(2025, 3, 2))
    assert sales_by_day(con) == [(1, date(2025, 3, 1)), (2, date(2025, 3, 1)), (3, date(2025, 3, 1))]
    assert con.execute("SELECT count(*) FROM raw.sale_items WHERE sale_id = 3").fetchone()[0] == 1
    check = extract.moved_sales_check(w, date(2025, 3, 2))
    assert not check["passed"] and check["examples"] == ["sale 3 moved from 2025-03-02 to 2025-03-01"]
    assert check["days_to_rebuild"] == ["2025-03-01"]
    assert extract.reconcile_sales(con, date(2025, 3, 1), date(2025, 3, 2)) == []


def test_sale_gone_from_the_listing_is_named(tmp_path, con):
    load_good(tmp_path, con)
    extract.stage_sales(con, write_json(tmp_path, GOOD[1:], "b.json"))
    w = extract.write_sales_range(con, date(2025, 3, 1), date(2025, 3, 2))
    check = extract.moved_sales_check(w, date(2025, 3, 2))
    assert check["examples"] == ["sale 1 of 2025-03-01 is no longer in the core's listing: removed"]
    extract.stage_sales(con, write_json(tmp_path, GOOD[1:], "b.json"))
    assert extract.moved_sales_check(extract.write_sales_range(con, date(2025, 3, 1), date(2025, 3, 2)),
                                     date(2025, 3, 2))["passed"]
