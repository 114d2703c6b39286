"""Sales: creation, stock checks, bulk all-or-nothing, listings and their windows, the Date header."""

from __future__ import annotations

from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

import orjson
import pytest

from .conftest import API, assert_error

SALE_KEYS = {"id", "saleDate", "totalAmount", "items"}
ITEM_KEYS = {"productId", "productName", "sku", "quantity", "unitPrice", "subtotal"}


def stock(core, sku):
    return core.admin.get(f"/products/by-sku/{sku}").json()["stockQuantity"]


def test_create_sale_takes_price_checks_and_deducts_stock(core):
    core.clock.set(datetime(2025, 3, 10, 16, 0, 5, 120000))
    resp = core.admin.post("/sales", json={"items": [{"sku": "MUG-1", "quantity": 2}, {"productId": 3, "quantity": 1}]})
    assert resp.status_code == 201
    sale = resp.json()
    assert set(sale) == SALE_KEYS  # no customer: no customerId key
    assert sale["id"] == 6
    assert sale["saleDate"] == "2025-03-10T16:00:05.12"
    assert sale["totalAmount"] == 26.1
    assert [set(i) for i in sale["items"]] == [ITEM_KEYS, ITEM_KEYS]
    assert sale["items"][0] == {"productId": 1, "productName": "Blue Mug", "sku": "MUG-1", "quantity": 2, "unitPrice": 12.5, "subtotal": 25.0}
    assert sale["items"][1]["sku"] == "PEN-1" and sale["items"][1]["unitPrice"] == 1.1
    assert stock(core, "MUG-1") == 38 and stock(core, "PEN-1") == 9
    listed = core.admin.get("/sales").json()
    assert listed[-1] == sale


def test_sale_with_customer_and_price_snapshot(core):
    sale = core.admin.post("/sales", json={"items": [{"sku": "TEA-1", "quantity": 1}], "customerId": "C-9"}).json()
    assert sale["customerId"] == "C-9"
    core.admin.put("/products/by-sku/TEA-1", json={"name": "Jasmine Tea", "sku": "TEA-1", "price": 5, "stockQuantity": 20})
    again = [s for s in core.admin.get("/sales").json() if s["id"] == sale["id"]][0]
    assert again["items"][0]["productName"] == "Green Tea" and again["items"][0]["unitPrice"] == 4.2
    later = core.admin.post("/sales", json={"items": [{"sku": "TEA-1", "quantity": 1}]}).json()
    assert later["items"][0]["productName"] == "Jasmine Tea" and later["items"][0]["unitPrice"] == 5


def test_insufficient_stock_is_400_and_changes_nothing(core):
    before = core.admin.get("/sales").content
    resp = core.admin.post("/sales", json={"items": [{"sku": "MUG-1", "quantity": 1}, {"sku": "BAG-1", "quantity": 4}]})
    body = assert_error(resp, 400, "INSUFFICIENT_STOCK")
    assert body["message"] == "Not enough stock for product BAG-1"
    assert stock(core, "MUG-1") == 40 and stock(core, "BAG-1") == 3
    assert core.admin.get("/sales").content == before
    # the same product twice in one sale counts against one stock figure
    resp = core.admin.post("/sales", json={"items": [{"sku": "BAG-1", "quantity": 2}, {"sku": "BAG-1", "quantity": 2}]})
    assert_error(resp, 400, "INSUFFICIENT_STOCK")
    assert core.admin.post("/sales", json={"items": [{"sku": "BAG-1", "quantity": 3}]}).status_code == 201
    assert stock(core, "BAG-1") == 0


def test_sale_request_errors(core):
    body = assert_error(core.admin.post("/sales", json={"items": []}), 400, "VALIDATION_ERROR")
    assert list(body["details"]) == ["items"]
    body = assert_error(core.admin.post("/sales", json={"items": [{"sku": "MUG-1", "quantity": 0}]}), 400, "VALIDATION_ERROR")
    assert list(body["details"]) == ["items[0].quantity"]
    assert_error(core.admin.post("/sales", json={"items": [{"sku": "NOPE", "quantity": 1}]}), 404, "NOT_FOUND")
    assert_error(core.admin.post("/sales", json={"items": [{"productId": 99, "quantity": 1}]}), 404, "NOT_FOUND")
    assert_error(core.admin.post("/sales", json={"items": [{"productId": 1, "sku": "TEA-1", "quantity": 1}]}), 400, "RUNTIME_ERROR")
    assert_error(core.admin.post("/sales", content=b"{", headers={"Content-Type": "application/json"}), 400, "RUNTIME_ERROR")
    assert len(core.admin.get("/sales").json()) == 5


def test_bulk_is_text_plain_and_all_or_nothing(core):
    ok = [{"items": [{"sku": "MUG-1", "quantity": 1}]}, {"items": [{"sku": "PEN-1", "quantity": 2}], "customerId": "C-3"}]
    resp = core.admin.post("/sales/bulk", json=ok)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    assert resp.text == "Bulk sales imported successfully"
    sales = core.admin.get("/sales").json()
    assert [s["id"] for s in sales] == [1, 2, 3, 4, 5, 6, 7]
    assert sales[-1]["customerId"] == "C-3" and "customerId" not in sales[-2]
    assert stock(core, "MUG-1") == 39 and stock(core, "PEN-1") == 8

    bad = [{"items": [{"sku": "MUG-1", "quantity": 1}]}, {"items": [{"sku": "BAG-1", "quantity": 50}]}]
    assert_error(core.admin.post("/sales/bulk", json=bad), 400, "INSUFFICIENT_STOCK")
    missing = [{"items": [{"sku": "MUG-1", "quantity": 1}]}, {"items": [{"sku": "NOPE", "quantity": 1}]}]
    assert_error(core.admin.post("/sales/bulk", json=missing), 404, "NOT_FOUND")
    invalid = [{"items": [{"sku": "MUG-1", "quantity": 1}]}, {"items": []}]
    assert_error(core.admin.post("/sales/bulk", json=invalid), 400, "VALIDATION_ERROR")
    assert_error(core.admin.post("/sales/bulk", json={"items": []}), 400, "RUNTIME_ERROR")
    assert len(core.admin.get("/sales").json()) == 7
    assert stock(core, "MUG-1") == 39


def test_all_sales_in_id_order_with_items_in_line_order(core):
    sales = core.admin.get("/sales").json()
    assert [s["id"] for s in sales] == [1, 2, 3, 4, 5]
    # ids in time order, ties by first appearance in the file
    assert [s["saleDate"] for s in sales] == [
        "2025-03-02T23:59:59.999", "2025-03-03T00:00:00", "2025-03-09T18:00:00",
        "2025-03-09T18:00:00", "2025-03-10T08:15:00.12",
    ]
    assert [i["sku"] for i in sales[0]["items"]] == ["PEN-1", "MUG-1"]
    assert [i["sku"] for i in sales[2]["items"]] == ["TEA-1"] and [i["sku"] for i in sales[3]["items"]] == ["PEN-1"]


def test_history_window_starts_at_start_of_day_newest_first(core):
    days7 = core.admin.get("/sales/history", params={"days": 7}).json()
    assert [s["id"] for s in days7] == [5, 4, 3, 2]  # 2025-03-03T00:00:00 in, 03-02T23:59:59.999 out
    assert [s["id"] for s in core.admin.get("/sales/history", params={"days": 8}).json()] == [5, 4, 3, 2, 1]
    assert [s["id"] for s in core.admin.get("/sales/history", params={"days": 0}).json()] == [5]
    assert [s["id"] for s in core.admin.get("/sales/history", params={"days": 1}).json()] == [5, 4, 3]
    assert len(core.admin.get("/sales/history").json()) == 5  # default 90 days
    # the window moves with the clock
    core.clock.advance(days=1)
    core.relogin()
    assert [s["id"] for s in core.admin.get("/sales/history", params={"days": 7}).json()] == [5, 4, 3]
    assert_error(core.admin.get("/sales/history", params={"days": "x"}), 400, "RUNTIME_ERROR")


def test_today_and_recent(core):
    assert [s["id"] for s in core.admin.get("/sales/today").json()] == [5]
    core.admin.post("/sales", json={"items": [{"sku": "PEN-1", "quantity": 1}]})
    assert [s["id"] for s in core.admin.get("/sales/today").json()] == [6, 5]
    assert [s["id"] for s in core.admin.get("/sales/recent", params={"limit": 3}).json()] == [6, 5, 4]
    assert len(core.admin.get("/sales/recent").json()) == 6
    assert_error(core.admin.get("/sales/recent", params={"limit": 0}), 400, "RUNTIME_ERROR")
    core.clock.advance(days=1)
    core.relogin()
    assert core.admin.get("/sales/today").json() == []


def test_product_history_by_sku_days_with_sales_ascending(core):
    resp = core.admin.get("/sales/history/by-sku/MUG-1", params={"days": 30})
    assert resp.json() == [{"date": "2025-03-02", "quantity": 1}, {"date": "2025-03-03", "quantity": 2}, {"date": "2025-03-10", "quantity": 1}]
    assert core.admin.get("/sales/history/by-sku/MUG-1", params={"days": 7}).json() == [
        {"date": "2025-03-03", "quantity": 2}, {"date": "2025-03-10", "quantity": 1},
    ]
    core.admin.post("/sales", json={"items": [{"sku": "PEN-1", "quantity": 2}]})
    assert core.admin.get("/sales/history/by-sku/PEN-1").json() == [
        {"date": "2025-03-02", "quantity": 3}, {"date": "2025-03-09", "quantity": 1}, {"date": "2025-03-10", "quantity": 2},
    ]
    assert core.admin.get("/sales/history/by-sku/BAG-1").json() == []
    assert_error(core.admin.get("/sales/history/by-sku/NOPE"), 404, "NOT_FOUND")


def test_json_format_of_money_and_dates(core):
    raw = core.admin.get("/sales").content
    sales = orjson.loads(raw)
    for s in sales:
        for value in [s["totalAmount"]] + [i[k] for i in s["items"] for k in ("unitPrice", "subtotal")]:
            assert isinstance(value, (int, float)) and round(value, 2) == value
        datetime.fromisoformat(s["saleDate"])
        assert len(s["saleDate"]) >= 19 and "+" not in s["saleDate"] and not s["saleDate"].endswith("Z")
    assert b'"customerId":null' not in raw
    assert sum(1 for s in sales if "customerId" in s) == 2
    # odd names survive, and the streamed rendering is the canonical one
    core.admin.post("/products", json={"name": 'Caf\u00e9 "Cr\u00e8me" \\ 10\u20ac \U0001f600', "sku": "ODD-1", "price": 0.1, "stockQuantity": 3})
    core.admin.post("/sales", json={"items": [{"sku": "ODD-1", "quantity": 3}], "customerId": "Z\u00fc"})
    raw = core.admin.get("/sales").content
    assert raw == orjson.dumps(orjson.loads(raw))
    last = orjson.loads(raw)[-1]
    assert last["items"][0]["productName"] == 'Caf\u00e9 "Cr\u00e8me" \\ 10\u20ac \U0001f600'
    assert (last["totalAmount"], last["customerId"]) == (0.3, "Z\u00fc")


@pytest.mark.parametrize("path", ["/products", "/sales", "/auth/me", "/nope"])
def test_date_header_follows_the_clock(core, path):
    core.clock.set(datetime(2031, 7, 4, 23, 59, 58))
    core.relogin()
    resp = core.admin.get(path)
    assert len(resp.headers.get_list("date")) == 1
    assert parsedate_to_datetime(resp.headers["date"]).replace(tzinfo=None) == datetime(2031, 7, 4, 23, 59, 58)
    core.clock.advance(timedelta(seconds=3))
    resp = core.anon.post("/auth/login", json={"phoneNumber": "x", "password": "y"})
    assert parsedate_to_datetime(resp.headers["date"]).date().isoformat() == "2031-07-05"


def test_date_header_in_shop_timezone(tmp_path):
    from emulator.clock import FixedClock

    from .conftest import core_at

    clock = FixedClock(datetime(2025, 6, 1, 0, 30), tz="Europe/Berlin")
    with core_at(tmp_path / "s.sqlite3", clock=clock) as c:
        resp = c.anon.get("/products")
        # local 00:30 in Berlin (UTC+2) is 22:30 UTC of the day before
        assert parsedate_to_datetime(resp.headers["date"]).isoformat() == "2025-05-31T22:30:00+00:00"
        assert resp.url.path == f"{API}/products"
