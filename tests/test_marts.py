"""The sales and stock marts: a tiny shop computed by hand to the cent, and random shops checked
against independent computations (plain Python, and the pandas baseline)."""

from __future__ import annotations

import calendar
import itertools
import math
import sys
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from salesflow import marts
from salesflow.warehouse import ensure_schema

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from pandas_baseline import pandas_kpis, pandas_marts  # noqa: E402

D = Decimal
ZERO = D("0.00")


# -- helpers ---------------------------------------------------------------------------------
def connect(tmp_path: Path, name: str = "w.duckdb") -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(tmp_path / name))
    ensure_schema(con)
    return con


def load_shop(con, products=(), inventory=(), sales=(), snapshots=(), product_ids=None) -> None:
    """products: (sku, name, price, stock, threshold); inventory: (sku, category, cost);
    sales: (sale_id, day, customer_id, [(sku, item name, quantity, unit price)]);
    snapshots: (day, sku, stock, threshold); product_ids: sku -> the lines' product id (else NULL)."""
    product_ids = product_ids or {}
    def insert(table: str, values: list[list]) -> None:
        if values:
            row = "(" + ", ".join("?" * len(values[0])) + ")"
            con.execute(f"INSERT INTO {table} VALUES {', '.join([row] * len(values))}",
                        [v for r in values for v in r])

    loaded = datetime(2025, 1, 1)
    insert("raw.products", [[i, sku, name, D(price), stock, threshold, None, loaded]
                            for i, (sku, name, price, stock, threshold) in enumerate(products, start=1)])
    insert("raw.inventory", [[sku, sku, category, D(cost), ZERO, 0, loaded, loaded]
                             for sku, category, cost in inventory])
    sale_rows, item_rows = [], []
    for sale_id, day, customer, lines in sales:
        total = sum((D(price) * qty for _, _, qty, price in lines), ZERO)
        ts = datetime.combine(day, time(9)) + timedelta(minutes=sale_id)
        sale_rows.append([sale_id, ts, day, total, customer, loaded])
        item_rows += [[sale_id, line_no, product_ids.get(sku), sku, name, qty, D(price), D(price) * qty]
                      for line_no, (sku, name, qty, price) in enumerate(lines, start=1)]
    insert("raw.sales", sale_rows)
    insert("raw.sale_items", item_rows)
    insert("raw.stock_snapshots", [list(s) for s in snapshots])


def rows(con, sql: str, params=None) -> list[tuple]:
    return con.execute(sql, params or []).fetchall()


def dict_rows(con, sql: str, params=None) -> list[dict]:
    cur = con.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def mart_contents(con) -> dict[str, list[tuple]]:
    return {table: rows(con, f"SELECT * FROM {table} ORDER BY ALL") for table in marts.MARTS_DDL}


def half_up(num: Decimal, den, times: int = 1) -> Decimal | None:
    if not den:
        return None
    return (D(num) * times / D(den)).quantize(D("0.01"), rounding=ROUND_HALF_UP)


# -- the tiny shop ---------------------------------------------------------------------------
AS_OF = date(2025, 3, 10)
DAILY_START = date(2024, 11, 1)

PRODUCTS = [  # sku, name, price, stock (current), threshold
    ("A-1", "Apple Mug", "12.50", 40, 5),
    ("B-2", "Blue Pen", "2.35", 200, 10),
    ("C-3", "Scented Candle", "7.99", 3, 5),
    ("D-4", "Door Stop", "4.00", 0, 3),
    ("E-5", "Egg Timer", "6.00", 8, 5),
    ("F-6", "Fan", "20.00", 1, 4),
    ("G-7", "Glue", "1.50", 2, 4),
]
INVENTORY = [  # C-3's cost is unknown (cost 0, 'Uncategorized'); Z-9 is not in the inventory
    ("A-1", "Kitchen", "5.20"), ("B-2", "Stationery", "0.90"), ("C-3", "Uncategorized", "0.00"),
    ("D-4", "Hardware", "1.00"), ("E-5", "Kitchen", "2.00"), ("F-6", "Home", "9.00"),
    ("G-7", "Stationery", "0.40"),
]
A = ("A-1", "Apple Mug")
B = ("B-2", "Blue Pen")
C = ("C-3", "Candle")  # renamed since in the catalogue
SALES = [
    (1, date(2024, 11, 15), "c1", [("Z-9", "Zither", 1, "12.50")]),
    (2, date(2024, 11, 20), None, [("Z-9", "Zither Deluxe", 1, "12.50")]),
    (3, date(2025, 2, 3), "c1", [(*B, 4, "2.35")]),
    (4, date(2025, 2, 20), "c2", [(*A, 2, "12.50"), (*C, 1, "7.99")]),
    (5, date(2025, 2, 27), None, [(*B, 2, "2.35")]),
    (6, date(2025, 3, 2), "c4", [(*B, 2, "2.35")]),
    (7, date(2025, 3, 4), "c2", [(*A, 1, "12.50"), (*B, 3, "2.35")]),
    (8, date(2025, 3, 7), "c3", [(*C, 2, "7.99")]),
    (9, date(2025, 3, 7), "c2", [(*A, 1, "12.50"), (*B, 1, "2.35")]),
    (10, date(2025, 3, 10), " ", [(*C, 1, "7.99"), (*A, 1, "12.50")]),
]
SNAPSHOTS = [
    (date(2024, 12, 10), "A-1", 99, 1),  # 90 days before as_of: outside the turnover window
    (date(2025, 3, 8), "A-1", 4, 1),
    (date(2025, 3, 9), "A-1", 2, 1),
    (date(2025, 3, 10), "A-1", 1, 1),  # at as_of: stock_status uses it instead of raw.products
    (date(2025, 3, 9), "C-3", 0, 5),
]

# sale_date: orders, units, revenue, cost, gross_profit, revenue_with_cost
SHOP_DAYS = {
    date(2024, 11, 15): (1, 1, "12.50", "0.00", "0.00", "0.00"),
    date(2024, 11, 20): (1, 1, "12.50", "0.00", "0.00", "0.00"),
    date(2025, 2, 3): (1, 4, "9.40", "3.60", "5.80", "9.40"),
    date(2025, 2, 20): (1, 3, "32.99", "10.40", "14.60", "25.00"),
    date(2025, 2, 27): (1, 2, "4.70", "1.80", "2.90", "4.70"),
    date(2025, 3, 2): (1, 2, "4.70", "1.80", "2.90", "4.70"),
    date(2025, 3, 4): (1, 4, "19.55", "7.90", "11.65", "19.55"),
    date(2025, 3, 7): (2, 4, "30.83", "6.10", "8.75", "14.85"),
    date(2025, 3, 10): (1, 2, "20.49", "5.20", "7.30", "12.50"),
}


@pytest.fixture
def shop(tmp_path):
    con = connect(tmp_path)
    load_shop(con, PRODUCTS, INVENTORY, SALES, SNAPSHOTS)
    marts.build_daily(con, DAILY_START, AS_OF)
    marts.build_as_of(con, AS_OF)
    yield con
    con.close()


def test_daily_sales_every_day_every_column(shop):
    got = rows(shop, "SELECT * EXCLUDE (provisional) FROM marts.daily_sales ORDER BY sale_date")
    n_days = (AS_OF - DAILY_START).days + 1
    assert n_days == 130 and len(got) == n_days
    expected = []
    for k in range(n_days):
        day = DAILY_START + timedelta(days=k)
        o, u, rev, cost, gp, rwc = SHOP_DAYS.get(day, (0, 0, "0.00", "0.00", "0.00", "0.00"))
        identified = sum(1 for _, d, customer, _ in SALES if d == day and customer and customer.strip())
        expected.append((day, o, u, D(rev), D(cost), D(gp), D(rwc), identified))
    assert got == expected
    # 7 March: c3 and c2 (2 identified); 10 March: a blank id counts as anonymous
    assert {r[0]: r[7] for r in got}[date(2025, 3, 7)] == 2 and {r[0]: r[7] for r in got}[AS_OF] == 0
    # zero days carry zeros with two decimals, not NULLs
    assert str(got[0][3]) == "0.00" and got[0][1:3] == (0, 0)
    assert [r[0] for r in rows(shop, "DESCRIBE marts.daily_sales")] == [
        "sale_date", "orders", "units", "revenue", "cost", "gross_profit", "revenue_with_cost",
        "identified_orders", "provisional"]


def test_product_daily_sales_is_sparse_per_sku_and_day(shop):
    got = rows(shop, "SELECT * EXCLUDE (provisional) FROM marts.product_daily_sales WHERE sale_date >= '2025-03-01' "
                     "ORDER BY sale_date, sku")
    assert got == [
        (date(2025, 3, 2), "B-2", 1, 2, D("4.70")),
        (date(2025, 3, 4), "A-1", 1, 1, D("12.50")),
        (date(2025, 3, 4), "B-2", 1, 3, D("7.05")),
        (date(2025, 3, 7), "A-1", 1, 1, D("12.50")),
        (date(2025, 3, 7), "B-2", 1, 1, D("2.35")),
        (date(2025, 3, 7), "C-3", 1, 2, D("15.98")),
        (date(2025, 3, 10), "A-1", 1, 1, D("12.50")),
        (date(2025, 3, 10), "C-3", 1, 1, D("7.99")),
    ]
    assert rows(shop, "SELECT count(*) FROM marts.product_daily_sales")[0][0] == 14
    assert rows(shop, "SELECT * EXCLUDE (provisional) FROM marts.product_daily_sales WHERE sku = 'Z-9' ORDER BY 1") == [
        (date(2024, 11, 15), "Z-9", 1, 1, D("12.50")), (date(2024, 11, 20), "Z-9", 1, 1, D("12.50"))]


def test_orders_per_sku_count_sales_whatever_their_ids(tmp_path):
    """Orders per sku and day are distinct sales, whether the sale ids of a day run densely
    (dated by their range) or interleave with other days' (joined to their sales), whether a
    sale lists a sku twice, and whether two product ids share a bit of the repeat proof
    (1 and 64: the same id mod 63)."""
    con = connect(tmp_path)
    d1, d2, d3 = date(2025, 4, 1), date(2025, 4, 2), date(2025, 4, 3)
    a, b = ("A", "Apple", 1, "1.00"), ("B", "Bread", 1, "2.00")
    load_shop(con, sales=[
        (1, d1, None, [a, b]),   # d1 and d2 interleave: neither is a dense run of ids
        (2, d2, None, [a]),
        (3, d1, None, [a, a, b]),  # A twice in one sale
        (5, d2, None, [b]),       # id 4 is missing: its lines below are nobody's
        (6, d3, None, [a, b]),    # d3: ids 6..8, a dense run
        (7, d3, None, [b, b, b]),
        (8, d3, None, [a]),
    ], product_ids={"A": 1, "B": 64})
    con.execute("INSERT INTO raw.sale_items VALUES (4, 1, 1, 'A', 'Apple', 5, 1.00, 5.00)")
    marts.build_daily(con, d1, d3)
    assert rows(con, "SELECT * EXCLUDE (provisional) FROM marts.product_daily_sales ORDER BY ALL") == [
        (d1, "A", 2, 3, D("3.00")), (d1, "B", 2, 2, D("4.00")),
        (d2, "A", 1, 1, D("1.00")), (d2, "B", 1, 1, D("2.00")),
        (d3, "A", 2, 2, D("2.00")), (d3, "B", 2, 4, D("8.00")),
    ]
    assert rows(con, "SELECT sale_date, orders, units FROM marts.daily_sales ORDER BY 1") == [
        (d1, 2, 5), (d2, 2, 2), (d3, 3, 6)]


def test_kpis_all_five_windows_to_the_cent(shop):
    got = {r["window"]: r for r in dict_rows(shop, "SELECT * FROM marts.kpis WHERE as_of = ?", [AS_OF])}
    assert list(got) == ["7d", "28d", "mtd", "ytd", "all"]

    def kpi(window, start, revenue, orders, units, aov, gross_profit, margin, coverage, growth,
            customers, repeat, peak_day, peak_revenue, note):
        return {
            "as_of": AS_OF, "window": window, "revenue": D(revenue), "orders": orders, "units": units,
            "avg_order_value": D(aov), "gross_margin_pct": D(margin),
            "revenue_growth_pct": None if growth is None else D(growth),
            "repeat_customer_rate": D(repeat), "peak_day": peak_day, "peak_day_revenue": D(peak_revenue),
            "window_start": start, "window_end": AS_OF, "gross_profit": D(gross_profit),
            "cost_coverage_pct": D(coverage), "customers": customers, "note": note,
        }

    def partial(n, of):
        return f"customer figures from {n} of {of} orders (the others carry no customer id)"

    mar7, feb20 = date(2025, 3, 7), date(2025, 2, 20)
    # 7d: 70.87 over 4 orders; cost known on 46.90 of it; previous 7 days (Feb 25..Mar 3) 9.40
    assert got["7d"] == kpi("7d", date(2025, 3, 4), "70.87", 4, 10, "17.72", "27.70", "59.06", "66.18",
                            "653.94", 2, "50.00", mar7, "30.83", partial(3, 4))
    # 28d: previous 28 days (Jan 14..Feb 10) 9.40; Feb 20 beats Mar 7
    assert got["28d"] == kpi("28d", date(2025, 2, 11), "113.26", 7, 17, "16.18", "48.10", "59.16", "71.78",
                             "1104.89", 3, "33.33", feb20, "32.99", partial(5, 7))
    # mtd: Mar 1..10 against Feb 1..10 (9.40)
    assert got["mtd"] == kpi("mtd", date(2025, 3, 1), "75.57", 5, 12, "15.11", "30.60", "59.30", "68.28",
                             "703.94", 3, "33.33", mar7, "30.83", partial(4, 5))
    # ytd: nothing sold in Jan 1..Mar 10 2024, so no growth
    assert got["ytd"] == kpi("ytd", date(2025, 1, 1), "122.66", 8, 21, "15.33", "53.90", "59.43", "73.94",
                             None, 4, "25.00", feb20, "32.99", partial(6, 8))
    # all: from the first sale; Z-9 (not in the inventory) adds revenue but no cost
    assert got["all"] == kpi("all", date(2024, 11, 15), "147.66", 10, 23, "14.77", "53.90", "59.43", "61.42",
                             None, 4, "50.00", feb20, "32.99", partial(7, 10))
    assert [r[0] for r in rows(shop, "DESCRIBE marts.kpis")][:11] == [
        "as_of", "window", "revenue", "orders", "units", "avg_order_value", "gross_margin_pct",
        "revenue_growth_pct", "repeat_customer_rate", "peak_day", "peak_day_revenue"]


def test_top_products_ranks_names_and_shares(shop):
    got = rows(shop, """SELECT "window", rank, sku, product_name, revenue, units, revenue_share
                        FROM marts.top_products WHERE as_of = ? ORDER BY "window", rank""", [AS_OF])
    by_window = {w: [r[1:] for r in g] for w, g in itertools.groupby(got, key=lambda r: r[0])}
    assert by_window["7d"] == [
        (1, "A-1", "Apple Mug", D("37.50"), 3, D("52.91")),
        (2, "C-3", "Scented Candle", D("23.97"), 3, D("33.82")),
        (3, "B-2", "Blue Pen", D("9.40"), 4, D("13.26")),
    ]
    # Z-9 left the catalogue: its latest name in sale items stands in
    assert by_window["all"] == [
        (1, "A-1", "Apple Mug", D("62.50"), 5, D("42.33")),
        (2, "C-3", "Scented Candle", D("31.96"), 4, D("21.64")),
        (3, "B-2", "Blue Pen", D("28.20"), 12, D("19.10")),
        (4, "Z-9", "Zither Deluxe", D("25.00"), 2, D("16.93")),
    ]
    assert set(by_window) == {"7d", "28d", "mtd", "ytd", "all"}
    marts.build_as_of(shop, AS_OF, top_n=2)
    assert rows(shop, """SELECT "window", sku FROM marts.top_products WHERE as_of = ? AND "window" = 'all'
                         ORDER BY rank""", [AS_OF]) == [("all", "A-1"), ("all", "C-3")]
    assert rows(shop, "SELECT count(*) FROM marts.top_products")[0][0] == 10


def test_ties_go_to_the_lower_sku_and_the_earlier_day(tmp_path):
    con = connect(tmp_path)
    load_shop(con, [("Y", "Yak", "5.00", 1, 1), ("X", "Xylophone", "5.00", 1, 1)], [], [
        (1, AS_OF - timedelta(days=2), None, [("Y", "Yak", 1, "5.00")]),
        (2, AS_OF, None, [("X", "Xylophone", 1, "5.00")]),
    ])
    marts.build_daily(con, AS_OF - timedelta(days=30), AS_OF)
    marts.build_as_of(con, AS_OF)
    assert rows(con, """SELECT rank, sku, revenue_share FROM marts.top_products
                        WHERE "window" = '7d' ORDER BY rank""") == [(1, "X", D("50.00")), (2, "Y", D("50.00"))]
    assert rows(con, """SELECT peak_day, peak_day_revenue FROM marts.kpis WHERE "window" = '7d'""") == [
        (AS_OF - timedelta(days=2), D("5.00"))]


def test_growth_compares_with_the_same_span_just_before(tmp_path):
    as_of = date(2025, 3, 31)
    amounts = {  # day: revenue of one sale that day
        date(2024, 3, 31): "10.00",   # last day of ytd's previous span
        date(2024, 4, 1): "1000.00",  # the day after it
        date(2024, 12, 31): "500.00",
        date(2025, 1, 1): "20.00",
        date(2025, 2, 1): "3.00",     # first day of mtd's previous span
        date(2025, 2, 28): "7.00",    # its last day (March has 31 days, February 28)
        date(2025, 3, 1): "40.00",
        date(2025, 3, 24): "5.00",    # last day before the 7 days
        date(2025, 3, 25): "50.00",
    }
    con = connect(tmp_path)
    load_shop(con, [], [], [(i, day, None, [("P", "Pot", 1, amount)])
                            for i, (day, amount) in enumerate(amounts.items(), start=1)])
    marts.build_daily(con, date(2024, 3, 1), as_of)
    marts.build_as_of(con, as_of)
    got = {w: (rev, growth) for w, rev, growth in rows(
        con, 'SELECT "window", revenue, revenue_growth_pct FROM marts.kpis WHERE as_of = ?', [as_of])}
    assert got == {
        "7d": (D("50.00"), D("900.00")),      # vs Mar 18..24: 5.00
        "28d": (D("55.00"), D("17.02")),      # vs Feb 4..Mar 3: 47.00
        "mtd": (D("95.00"), D("850.00")),     # vs Feb 1..28: 10.00
        "ytd": (D("125.00"), D("1150.00")),   # vs 2024-01-01..03-31: 10.00
        "all": (D("1635.00"), None),
    }
    baseline = pandas_kpis(con.execute("SELECT * FROM raw.sales").df(),
                           con.execute("SELECT * FROM raw.sale_items").df(),
                           con.execute("SELECT * FROM raw.inventory").df(), as_of)
    assert {r["window"]: (r["revenue"], r["revenue_growth_pct"]) for r in baseline.to_dict("records")} == got


STOCK_COLUMNS = ("sku, product_name, stock_quantity, low_stock_threshold, avg_daily_units_28d, "
                 "days_of_cover, status, severity, reorder_qty, last_sale_date")


def test_stock_status_statuses_severities_and_reorder(shop):
    got = rows(shop, f"SELECT {STOCK_COLUMNS} FROM marts.stock_status WHERE as_of = ? ORDER BY sku", [AS_OF])
    mar10, mar7 = date(2025, 3, 10), date(2025, 3, 7)
    assert got == [
        # snapshot at as_of (1 of threshold 1), 5 units in 28 days: cover 5.6 < 7-day lead time;
        # reorder ceil(5/28 * 14) + 1 - 1 = 3
        ("A-1", "Apple Mug", 1, 1, D("0.179"), D("5.6"), "OK", "medium", 3, mar10),
        # 8 units in 28 days: 700 days of cover
        ("B-2", "Blue Pen", 200, 10, D("0.286"), D("700.0"), "OVERSTOCK", "none", 0, mar7),
        # 3 < 5 (ratio 0.6): low; reorder ceil(4/28 * 14) + 5 - 3 = 4
        ("C-3", "Scented Candle", 3, 5, D("0.143"), D("21.0"), "LOW", "low", 4, mar10),
        ("D-4", "Door Stop", 0, 3, D("0.000"), None, "OUT_OF_STOCK", "critical", 3, None),
        ("E-5", "Egg Timer", 8, 5, D("0.000"), None, "DEAD", "none", 0, None),
        ("F-6", "Fan", 1, 4, D("0.000"), None, "LOW", "high", 3, None),  # ratio 0.25
        ("G-7", "Glue", 2, 4, D("0.000"), None, "LOW", "medium", 2, None),  # ratio 0.5
    ]
    assert {r[6] for r in got} == {"OUT_OF_STOCK", "LOW", "DEAD", "OVERSTOCK", "OK"}
    assert {r[7] for r in got} == {"critical", "high", "medium", "low", "none"}

    # a 30-day lead time: the candle's 21 days of cover are too short, so it is high
    marts.build_as_of(shop, AS_OF, lead_time_days=30)
    got = {r[0]: r for r in rows(shop, f"SELECT {STOCK_COLUMNS} FROM marts.stock_status "
                                       "WHERE as_of = ? ORDER BY sku", [AS_OF])}
    assert got["C-3"][6:9] == ("LOW", "high", 8)  # ceil(4/28 * 37) + 5 - 3
    assert got["A-1"][6:9] == ("OK", "medium", 7)  # ceil(5/28 * 37) + 1 - 1
    assert got["B-2"][6:9] == ("OVERSTOCK", "none", 0)
    assert rows(shop, "SELECT count(*) FROM marts.stock_status")[0][0] == 7

    # overstock_days above B-2's 700 days of cover: OK
    marts.build_as_of(shop, AS_OF, overstock_days=700)
    assert rows(shop, "SELECT status FROM marts.stock_status WHERE sku = 'B-2'") == [("OK",)]


def test_stock_status_dead_after_90_days_without_a_sale(shop):
    # 90 days after B-2's last sale (Mar 7) it still counts as sold; a day later it is dead
    marts.build_as_of(shop, date(2025, 6, 4))
    marts.build_as_of(shop, date(2025, 6, 5))
    got = dict(rows(shop, "SELECT as_of, status FROM marts.stock_status WHERE sku = 'B-2'"))
    assert got == {AS_OF: "OVERSTOCK", date(2025, 6, 4): "OK", date(2025, 6, 5): "DEAD"}
    last = rows(shop, "SELECT last_sale_date, avg_daily_units_28d, days_of_cover, severity, reorder_qty "
                      "FROM marts.stock_status WHERE sku = 'B-2' AND as_of = '2025-06-05'")
    assert last == [(date(2025, 3, 7), D("0.000"), None, "none", 0)]


def test_stock_turnover_over_the_last_90_days(shop):
    got = rows(shop, "SELECT * FROM marts.stock_turnover WHERE as_of = ? ORDER BY sku", [AS_OF])
    assert got == [
        (AS_OF, "A-1", 90, 5, D("2.33"), 3, D("2.143")),  # snapshots 4, 2, 1: 5 / (7/3)
        (AS_OF, "B-2", 90, 12, None, 0, None),
        (AS_OF, "C-3", 90, 4, D("0.00"), 1, None),
        (AS_OF, "D-4", 90, 0, None, 0, None),
        (AS_OF, "E-5", 90, 0, None, 0, None),
        (AS_OF, "F-6", 90, 0, None, 0, None),
        (AS_OF, "G-7", 90, 0, None, 0, None),
    ]


def test_cost_is_known_unless_zero_and_uncategorized_or_missing(tmp_path):
    con = connect(tmp_path)
    inventory = [("K1", "Gifts", "0.00"),          # known: free to the shop
                 ("K2", "Uncategorized", "1.10"),  # known: a cost was recorded
                 ("U1", "Uncategorized", "0.00"),  # the core's "unknown"
                 ("U2", None, "0.00")]             # no category counts as Uncategorized
    lines = [("K1", "k1", 2, "3.00"), ("K2", "k2", 3, "2.00"), ("U1", "u1", 1, "5.00"),
             ("U2", "u2", 1, "7.00"), ("M", "missing", 1, "11.00")]
    load_shop(con, [], inventory, [(1, AS_OF, None, lines)])
    marts.build_daily(con, AS_OF, AS_OF)
    # revenue 6 + 6 + 5 + 7 + 11; cost 0 + 3.30 on the 12.00 with a known cost
    assert rows(con, "SELECT * EXCLUDE (provisional) FROM marts.daily_sales") == [
        (AS_OF, 1, 8, D("35.00"), D("3.30"), D("8.70"), D("12.00"), 0)]
    marts.build_as_of(con, AS_OF)
    assert rows(con, """SELECT gross_margin_pct, cost_coverage_pct FROM marts.kpis
                        WHERE "window" = '7d'""") == [(D("72.50"), D("34.29"))]


def test_customer_kpis_are_null_with_a_note_when_sales_carry_no_ids(tmp_path):
    con = connect(tmp_path)
    day = date(2025, 1, 20)
    load_shop(con, [("P", "Pot", "1.00", 5, 1)], [("P", "Home", "0.50")], [
        (1, day, None, [("P", "Pot", 1, "4.02")]),
        (2, day, "", [("P", "Pot", 1, "6.03")]),
    ])
    marts.build_daily(con, date(2025, 1, 1), date(2025, 2, 28))
    marts.build_as_of(con, day)
    got = {r["window"]: r for r in dict_rows(con, "SELECT * FROM marts.kpis")}
    for w in marts.WINDOWS:
        assert got[w]["customers"] is None and got[w]["repeat_customer_rate"] is None
        assert got[w]["note"] == "no customer ids in this window's sales"
    # 10.05 over 2 orders is 5.025: half-up gives 5.03 (half-even or a float would give 5.02)
    assert got["7d"]["avg_order_value"] == D("5.03")

    # a window without sales: no figures rather than zeros, and it says why
    marts.build_as_of(con, date(2025, 2, 28))
    got = {r["window"]: r for r in dict_rows(con, "SELECT * FROM marts.kpis WHERE as_of = '2025-02-28'")}
    assert got["7d"]["revenue"] == ZERO and got["7d"]["orders"] == 0
    for column in ("avg_order_value", "gross_margin_pct", "cost_coverage_pct", "revenue_growth_pct",
                   "repeat_customer_rate", "customers", "peak_day", "peak_day_revenue"):
        assert got["7d"][column] is None, column
    assert got["7d"]["note"] == "no sales in this window"
    # the month before had sales and this one none: -100 %
    assert got["mtd"]["revenue_growth_pct"] == D("-100.00")
    assert got["all"]["window_start"] == day and got["all"]["revenue"] == D("10.05")


def test_build_as_of_reports_days_missing_from_daily_sales(tmp_path):
    con = connect(tmp_path)
    load_shop(con, [], [], SALES)
    marts.build_daily(con, date(2025, 3, 1), AS_OF)
    assert marts.build_as_of(con, AS_OF)["daily_days_missing"] == (date(2025, 3, 1) - date(2024, 11, 15)).days
    marts.build_daily(con, DAILY_START, AS_OF)
    counts = marts.build_as_of(con, AS_OF)
    assert counts == {"kpis": 5, "top_products": 16, "stock_status": 0, "stock_turnover": 0,
                      "daily_days_missing": 0}


# -- reruns and transactions -----------------------------------------------------------------
def test_reruns_replace_rows_instead_of_adding_them(shop):
    before = mart_contents(shop)
    assert marts.build_daily(shop, DAILY_START, AS_OF) == {"daily_sales": 130, "product_daily_sales": 14}
    marts.build_as_of(shop, AS_OF)
    assert mart_contents(shop) == before

    # a sale is cancelled in the source: rebuilding its day alone corrects every mart
    shop.execute("DELETE FROM raw.sale_items WHERE sale_id = 9")
    shop.execute("DELETE FROM raw.sales WHERE sale_id = 9")
    assert marts.build_daily(shop, date(2025, 3, 7), date(2025, 3, 7)) == {
        "daily_sales": 1, "product_daily_sales": 1}
    marts.build_as_of(shop, AS_OF)
    assert rows(shop, "SELECT orders, revenue FROM marts.daily_sales WHERE sale_date = '2025-03-07'") == [
        (1, D("15.98"))]
    assert rows(shop, "SELECT count(*) FROM marts.daily_sales")[0][0] == 130
    assert rows(shop, """SELECT revenue, orders FROM marts.kpis WHERE "window" = '7d'""") == [(D("56.02"), 3)]
    after = mart_contents(shop)
    for table in ("marts.stock_status", "marts.stock_turnover"):
        assert len(after[table]) == len(before[table])


class _FailingConnection:
    """Passes statements to DuckDB but fails the one that contains ``fail_on``."""

    def __init__(self, con, fail_on: str):
        self.con, self.fail_on = con, fail_on

    def execute(self, sql, *args, **kwargs):
        if self.fail_on in sql:
            raise RuntimeError("disk full")
        return self.con.execute(sql, *args, **kwargs)


def test_rebuilding_a_range_after_sales_changed_updates_customer_kpis(shop):
    """Customer figures of the long windows come from first/second sale days kept per
    customer id; a partial rebuild after sales were dropped and added must count them anew."""
    shop.execute("DELETE FROM raw.sale_items WHERE sale_id IN (7, 9)")
    shop.execute("DELETE FROM raw.sales WHERE sale_id IN (7, 9)")  # c2 keeps one sale only
    load_shop(shop, sales=[(11, date(2025, 3, 5), " c4 ", [(*B, 1, "2.35")])])  # c4's second sale
    marts.build_daily(shop, date(2025, 3, 4), date(2025, 3, 7))
    marts.build_as_of(shop, AS_OF)
    got = {r["window"]: (r["customers"], r["repeat_customer_rate"])
           for r in dict_rows(shop, "SELECT * FROM marts.kpis WHERE as_of = ?", [AS_OF])}
    # all: c1 (2 sales), c2 (1), c3 (1), c4 (2 after trimming " c4 ") -> 4 customers, 2 repeat
    assert got["all"] == (4, D("50.00"))
    # mtd (March): c4 twice, c3 once -> 2 customers, 1 repeat
    assert got["mtd"] == (2, D("50.00"))
    # ytd (2025): c1 once in 2025, c2 once, c4 twice, c3 once -> 4 customers, 1 repeat
    assert got["ytd"] == (4, D("25.00"))
    assert got["7d"] == (2, D("0.00")) and got["28d"] == (3, D("33.33"))


def test_a_failed_build_leaves_the_marts_as_they_were(shop):
    before = mart_contents(shop)
    shop.execute("DELETE FROM raw.sale_items WHERE sale_id = 10")
    with pytest.raises(RuntimeError, match="disk full"):
        marts.build_daily(_FailingConnection(shop, "INSERT INTO marts.product_daily_sales"), DAILY_START, AS_OF)
    with pytest.raises(RuntimeError, match="disk full"):
        marts.build_as_of(_FailingConnection(shop, "INSERT INTO marts.stock_turnover"), AS_OF)
    assert mart_contents(shop) == before
    assert not shop.execute("SELECT * FROM duckdb_tables() WHERE temporary").fetchall()


def test_bad_arguments_are_refused(tmp_path):
    con = connect(tmp_path)
    with pytest.raises(ValueError):
        marts.build_daily(con, AS_OF, AS_OF - timedelta(days=1))
    with pytest.raises(ValueError):
        marts.build_as_of(con, AS_OF, top_n=0)


# -- windows ---------------------------------------------------------------------------------
def test_kpi_windows_on_month_and_leap_year_edges():
    def bounds(as_of, first=None):
        return {w.name: (w.start, w.end, w.prev_start, w.prev_end) for w in marts.kpi_windows(as_of, first)}

    b = bounds(date(2024, 3, 31), date(2023, 6, 1))
    assert b["mtd"] == (date(2024, 3, 1), date(2024, 3, 31), date(2024, 2, 1), date(2024, 2, 29))
    assert b["ytd"][2:] == (date(2023, 1, 1), date(2023, 3, 31))
    assert b["all"] == (date(2023, 6, 1), date(2024, 3, 31), None, None)
    assert b["7d"] == (date(2024, 3, 25), date(2024, 3, 31), date(2024, 3, 18), date(2024, 3, 24))
    b = bounds(date(2024, 2, 29))
    assert b["ytd"][2:] == (date(2023, 1, 1), date(2023, 2, 28))
    assert b["mtd"][2:] == (date(2024, 1, 1), date(2024, 1, 29))
    assert b["all"][0] == date(2024, 2, 29)
    b = bounds(date(2025, 1, 15))
    assert b["mtd"][2:] == (date(2024, 12, 1), date(2024, 12, 15))
    assert b["28d"] == (date(2024, 12, 19), date(2025, 1, 15), date(2024, 11, 21), date(2024, 12, 18))


@given(st.dates(min_value=date(2001, 1, 1), max_value=date(2099, 12, 31)))
@settings(max_examples=300, deadline=None)
def test_window_and_previous_window_partition_their_periods(as_of):
    w = {x.name: x for x in marts.kpi_windows(as_of, date(2000, 1, 1))}
    for name, days in (("7d", 7), ("28d", 28)):
        assert w[name].days == days and w[name].end == as_of
        assert w[name].prev_end == w[name].start - timedelta(days=1)
        assert (w[name].prev_end - w[name].prev_start).days + 1 == days
    mtd, ytd = w["mtd"], w["ytd"]
    assert (mtd.start.year, mtd.start.month, mtd.start.day) == (as_of.year, as_of.month, 1)
    assert mtd.days == as_of.day
    prev_month_len = calendar.monthrange(mtd.prev_start.year, mtd.prev_start.month)[1]
    assert mtd.prev_start.day == 1
    assert mtd.prev_end.day == min(as_of.day, prev_month_len)
    assert (mtd.prev_end.year, mtd.prev_end.month) == (mtd.prev_start.year, mtd.prev_start.month)
    assert mtd.prev_start + timedelta(days=prev_month_len) == mtd.start
    assert ytd.start == date(as_of.year, 1, 1) and ytd.days == as_of.timetuple().tm_yday
    assert ytd.prev_start == date(as_of.year - 1, 1, 1) and ytd.prev_end.year == as_of.year - 1
    assert (ytd.prev_end.month, ytd.prev_end.day) == (
        (2, 28) if (as_of.month, as_of.day) == (2, 29) else (as_of.month, as_of.day))
    assert w["all"].prev_start is None and w["all"].start == date(2000, 1, 1)


# -- random shops ----------------------------------------------------------------------------
BASE = date(2024, 1, 1)
SHOP_DAYS_BACK = 400
# a few round prices make equal revenues (ties) common
prices = st.one_of(st.sampled_from(["0.00", "2.50", "5.00", "10.00"]),
                   st.integers(1, 2000).map(lambda c: str(D(c) / 100)))


def shop_range(as_of: date) -> tuple[date, date]:
    return as_of - timedelta(days=SHOP_DAYS_BACK), as_of + timedelta(days=5)


@st.composite
def shops(draw):
    n_skus = draw(st.integers(1, 4))
    skus = [f"S{i}" for i in range(n_skus)]
    inventory = []
    for sku in skus:
        kind = draw(st.sampled_from(["known", "known_free", "unknown", "missing"]))
        if kind == "known":
            inventory.append((sku, "Cat", str(D(draw(st.integers(1, 900))) / 100)))
        elif kind == "known_free":
            inventory.append((sku, "Samples", "0.00"))
        elif kind == "unknown":
            inventory.append((sku, "Uncategorized", "0.00"))
    as_of = BASE + timedelta(days=draw(st.integers(0, 430)))
    sales = []
    for sale_id in range(1, draw(st.integers(0, 14)) + 1):
        # mostly recent days (7d, 28d, mtd and their previous windows), some a year back (ytd's)
        day = as_of - timedelta(days=draw(st.one_of(st.integers(-3, 75), st.integers(330, SHOP_DAYS_BACK))))
        customer = draw(st.sampled_from([None, "", "c1", "c2", "c3"]))
        lines = [(sku, f"name {sku}", draw(st.integers(1, 5)), draw(prices))
                 for sku in draw(st.lists(st.sampled_from(skus), min_size=1, max_size=5))]
        sales.append((sale_id, day, customer, lines))
    products = [(sku, f"Product {sku}", "1.00", draw(st.integers(0, 30)), draw(st.integers(1, 10)))
                for sku in skus]
    # lines carry their product id (as from the core) or none (as from some imports)
    product_ids = {sku: i for i, sku in enumerate(skus, start=1) if draw(st.booleans())}
    return {"skus": skus, "inventory": inventory, "sales": sales, "products": products, "as_of": as_of,
            "product_ids": product_ids}


_example_numbers = itertools.count()


class _Shops:
    """A fresh warehouse file per example, all under the test's own tmp_path."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path

    def build(self, shop) -> duckdb.DuckDBPyConnection:
        con = connect(self.tmp_path, f"shop{next(_example_numbers)}.duckdb")
        load_shop(con, shop["products"], shop["inventory"], shop["sales"], product_ids=shop["product_ids"])
        as_of = shop["as_of"]
        marts.build_daily(con, *shop_range(as_of))
        marts.build_as_of(con, as_of)
        return con


def expected_days(shop) -> dict[date, list]:
    """orders, units, revenue, cost, revenue_with_cost per day, straight from the shop."""
    costs = {sku: D(cost) for sku, category, cost in shop["inventory"]
             if D(cost) > 0 or category != "Uncategorized"}
    days: dict[date, list] = {}
    for _, day, _, lines in shop["sales"]:
        d = days.setdefault(day, [0, 0, ZERO, ZERO, ZERO])
        d[0] += 1
        for sku, _, qty, price in lines:
            d[1] += qty
            d[2] += D(price) * qty
            if sku in costs:
                d[3] += costs[sku] * qty
                d[4] += D(price) * qty
    return days


PROPERTY_SETTINGS = settings(max_examples=15, deadline=None,
                             suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(shop=shops())
def test_property_daily_marts_match_the_sales_and_add_up(tmp_path, shop):
    con = _Shops(tmp_path).build(shop)
    as_of = shop["as_of"]
    expected = expected_days(shop)
    got = rows(con, "SELECT * EXCLUDE (provisional) FROM marts.daily_sales ORDER BY sale_date")
    assert len(got) == SHOP_DAYS_BACK + 6
    for day, orders, units, revenue, cost, gross_profit, revenue_with_cost, _ in got:
        o, u, r, c, rwc = expected.get(day, [0, 0, ZERO, ZERO, ZERO])
        assert (orders, units, revenue, cost, revenue_with_cost, gross_profit) == (o, u, r, c, rwc, rwc - c), day
    assert set(expected) <= {r[0] for r in got}
    mismatched = rows(con, """
        SELECT d.sale_date FROM marts.daily_sales d
        LEFT JOIN (SELECT sale_date, sum(units) AS units, sum(revenue) AS revenue, max(orders) AS max_orders,
                          sum(orders) AS sum_orders
                   FROM marts.product_daily_sales GROUP BY 1) p USING (sale_date)
        WHERE d.units <> coalesce(p.units, 0) OR d.revenue <> coalesce(p.revenue, 0)
           OR d.orders < coalesce(p.max_orders, 0) OR d.orders > coalesce(p.sum_orders, 0)""")
    assert mismatched == []
    sku_days: dict[tuple, list] = {}
    for sale_id, day, _, lines in shop["sales"]:
        for sku, _, qty, price in lines:
            got_day = sku_days.setdefault((day, sku), [set(), 0, ZERO])
            got_day[0].add(sale_id)
            got_day[1] += qty
            got_day[2] += D(price) * qty
    assert {(d, sku): (o, u, r) for d, sku, o, u, r in rows(con, "SELECT * EXCLUDE (provisional) FROM marts.product_daily_sales")} == {
        key: (len(ids), u, r) for key, (ids, u, r) in sku_days.items()}
    assert rows(con, "SELECT count(*) FROM marts.product_daily_sales WHERE units = 0")[0][0] == 0
    assert rows(con, "SELECT count(*) FROM marts.kpis WHERE as_of = ?", [as_of])[0][0] == 5
    con.close()


@PROPERTY_SETTINGS
@given(shop=shops())
def test_property_windows_sum_the_days_and_partition_the_history(tmp_path, shop):
    con = _Shops(tmp_path).build(shop)
    as_of = shop["as_of"]
    days = expected_days(shop)

    def revenue(start, end):
        return sum((v[2] for d, v in days.items() if start <= d <= end), ZERO)

    kpis = {r["window"]: r for r in dict_rows(con, "SELECT * FROM marts.kpis WHERE as_of = ?", [as_of])}
    daily = dict(rows(con, "SELECT sale_date, revenue FROM marts.daily_sales"))
    all_start = kpis["all"]["window_start"]
    sold = [d for d in days if d <= as_of]
    assert all_start == (min(sold) if sold else as_of)
    for w in marts.kpi_windows(as_of, all_start):
        k = kpis[w.name]
        assert (k["window_start"], k["window_end"]) == (w.start, w.end)
        assert k["revenue"] == sum((v for d, v in daily.items() if w.start <= d <= w.end), ZERO)
        assert k["revenue"] == revenue(w.start, w.end)
        # the window and the days of the history before it make up the whole history
        assert k["revenue"] + revenue(all_start, w.start - timedelta(days=1)) == kpis["all"]["revenue"]
        if w.prev_start is not None:
            prev = revenue(w.prev_start, w.prev_end)
            assert k["revenue_growth_pct"] == half_up(k["revenue"] - prev, prev, 100)
        else:
            assert k["revenue_growth_pct"] is None
        if k["orders"]:
            in_window = {d: v for d, v in days.items() if w.start <= d <= w.end}
            best = max(v[2] for v in in_window.values())
            assert k["peak_day"] == min(d for d, v in in_window.items() if v[2] == best)
    assert kpis["7d"]["revenue"] == sum((daily[as_of - timedelta(days=i)] for i in range(7)), ZERO)
    assert kpis["28d"]["revenue"] == sum((daily[as_of - timedelta(days=i)] for i in range(28)), ZERO)
    con.close()


@PROPERTY_SETTINGS
@given(shop=shops())
def test_property_pandas_baseline_gives_the_same_kpis(tmp_path, shop):
    con = _Shops(tmp_path).build(shop)
    as_of = shop["as_of"]
    baseline = pandas_kpis(con.execute("SELECT * FROM raw.sales").df(),
                           con.execute("SELECT * FROM raw.sale_items").df(),
                           con.execute("SELECT * FROM raw.inventory").df(), as_of)
    sql = {r["window"]: r for r in dict_rows(con, "SELECT * FROM marts.kpis WHERE as_of = ?", [as_of])}
    assert list(baseline["window"]) == list(marts.WINDOWS)
    for row in baseline.to_dict("records"):
        row = {k: None if v is None or v is pd.NaT or (isinstance(v, float) and math.isnan(v)) else v
               for k, v in row.items()}
        got = sql[row["window"]]
        for column in ("revenue", "orders", "units", "avg_order_value", "gross_profit", "gross_margin_pct",
                       "cost_coverage_pct", "revenue_growth_pct", "repeat_customer_rate", "customers",
                       "peak_day", "peak_day_revenue", "window_start", "window_end", "note"):
            assert got[column] == row[column], (row["window"], column, got[column], row[column])
    full = pandas_marts(con.execute("SELECT * FROM raw.sales").df(), con.execute("SELECT * FROM raw.sale_items").df(),
                        con.execute("SELECT * FROM raw.inventory").df(), con.execute("SELECT * FROM raw.products").df(),
                        con.execute("SELECT * FROM raw.stock_snapshots").df(), as_of)
    product_daily = {(r["sale_date"].date(), r["sku"]): (r["orders"], r["units"], round(r["revenue"], 2))
                     for r in full["product_daily_sales"].to_dict("records")}
    assert product_daily == {(d, sku): (o, u, float(r)) for d, sku, o, u, r in rows(
        con, "SELECT * EXCLUDE (provisional) FROM marts.product_daily_sales WHERE sale_date <= ?", [as_of])}
    sql_top = rows(con, 'SELECT "window", sku FROM marts.top_products WHERE as_of = ?', [as_of])
    assert sorted((r["window"], r["sku"]) for r in full["top_products"].to_dict("records")) == sorted(sql_top)
    assert dict(zip(full["stock_status"]["sku"], full["stock_status"]["status"])) == dict(
        rows(con, "SELECT sku, status FROM marts.stock_status WHERE as_of = ?", [as_of]))
    con.close()


@PROPERTY_SETTINGS
@given(shop=shops(), cut=st.integers(0, SHOP_DAYS_BACK + 5))
def test_property_rerunning_the_builds_changes_nothing(tmp_path, shop, cut):
    con = _Shops(tmp_path).build(shop)
    as_of = shop["as_of"]
    before = mart_contents(con)
    start, end = shop_range(as_of)
    middle = start + timedelta(days=cut)
    marts.build_daily(con, middle, end)
    marts.build_daily(con, start, middle)
    marts.build_as_of(con, as_of)
    marts.build_as_of(con, as_of)
    assert mart_contents(con) == before
    con.close()


# -- the contract's extremes -----------------------------------------------------------------
INT_MAX = 2**31 - 1


def test_stock_thresholds_and_units_at_the_java_int_limit(tmp_path):
    """Stock, thresholds and quantities up to 2^31-1 (Java ints) flow through every mart."""
    con = connect(tmp_path)
    big = date(2025, 3, 9)
    load_shop(
        con,
        products=[("BIG", "Big stock", "0.01", 1_000_000_000, 5), ("MAX", "Max stock", "0.01", INT_MAX, 1),
                  ("THR", "Max threshold", "4.65", 0, INT_MAX)],
        inventory=[("BIG", "Bulk", "9999999999.99"), ("MAX", "Bulk", "0.01")],
        sales=[(1, big, "c'1", [("BIG", "Big stock", INT_MAX, "0.01"), ("MAX", "Max stock", INT_MAX, "0.01")]),
               (2, AS_OF, None, [("MAX", "Max stock", INT_MAX, "4.65")]),
               (3, AS_OF, None, [("THR", "Max threshold", INT_MAX, "4.65")])],
        snapshots=[(AS_OF, "BIG", 1_000_000_000, 5), (AS_OF, "MAX", INT_MAX, 1), (AS_OF, "THR", 0, INT_MAX)],
    )
    marts.build_daily(con, big, AS_OF)
    marts.build_as_of(con, AS_OF)
    units = 4 * INT_MAX
    assert rows(con, "SELECT sum(units) FROM marts.daily_sales") == [(units,)]
    kpi = dict_rows(con, "SELECT * FROM marts.kpis WHERE as_of = ? AND \"window\" = '7d'", [AS_OF])[0]
    revenue = D("0.01") * 2 * INT_MAX + D("4.65") * 2 * INT_MAX
    assert (kpi["units"], kpi["revenue"], kpi["orders"]) == (units, revenue, 3)
    # unit cost 9,999,999,999.99 on 2^31-1 units: a cost of 21 digits
    cost = D("9999999999.99") * INT_MAX + D("0.01") * 2 * INT_MAX
    assert rows(con, "SELECT sum(cost) FROM marts.daily_sales") == [(cost,)]
    status = {r["sku"]: r for r in dict_rows(con, "SELECT * FROM marts.stock_status WHERE as_of = ?", [AS_OF])}
    assert status["BIG"]["stock_quantity"] == 1_000_000_000
    assert status["BIG"]["days_of_cover"] == D("13.0")  # 1e9 * 28 / (2^31-1)
    assert status["MAX"]["avg_daily_units_28d"] == (D(2 * INT_MAX) / 28).quantize(D("0.001"), ROUND_HALF_UP)
    # out of stock below a threshold of 2^31-1: the reorder covers 14 days of sales plus the threshold
    assert status["THR"]["status"] == "OUT_OF_STOCK"
    assert status["THR"]["reorder_qty"] == -(-INT_MAX * 14 // 28) + INT_MAX
    turnover = dict(rows(con, "SELECT sku, units_sold FROM marts.stock_turnover WHERE as_of = ?", [AS_OF]))
    assert turnover["MAX"] == 2 * INT_MAX
    top = rows(con, "SELECT sku, units FROM marts.top_products WHERE as_of = ? AND \"window\" = '7d' "
                    "ORDER BY rank", [AS_OF])
    assert top[:2] == [("MAX", 2 * INT_MAX), ("THR", INT_MAX)]


def test_an_older_warehouse_gets_the_wider_columns_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    old = {  # the types these columns had before they were widened
        "marts.daily_sales": "sale_date DATE, orders INTEGER, units INTEGER, revenue DECIMAL(18,2), "
                             "cost DECIMAL(18,2), gross_profit DECIMAL(18,2), revenue_with_cost DECIMAL(18,2), "
                             "identified_orders INTEGER",
        "marts.stock_status": "as_of DATE, sku VARCHAR, product_name VARCHAR, stock_quantity INTEGER, "
                              "low_stock_threshold INTEGER, avg_daily_units_28d DECIMAL(12,3), "
                              "days_of_cover DECIMAL(12,1), status VARCHAR, severity VARCHAR, "
                              "reorder_qty INTEGER, last_sale_date DATE",
    }
    con.execute("CREATE SCHEMA marts")
    for table, columns in old.items():
        con.execute(f"CREATE TABLE {table} ({columns})")
    con.execute("INSERT INTO marts.daily_sales VALUES ('2025-03-01', 2, 7, 12.50, 5.00, 7.50, 12.50, 1)")
    ensure_schema(con)
    assert rows(con, "SELECT * EXCLUDE (provisional) FROM marts.daily_sales") == [
        (date(2025, 3, 1), 2, 7, D("12.50"), D("5.00"), D("7.50"), D("12.50"), 1)]
    fresh = duckdb.connect(str(tmp_path / "fresh.duckdb"))
    ensure_schema(fresh)
    types = "SELECT schema_name, table_name, column_name, data_type FROM duckdb_columns() " \
            "WHERE schema_name = 'marts' ORDER BY ALL"
    assert rows(con, types) == rows(fresh, types)
    load_shop(con, products=[("MAX", "Max stock", "0.01", INT_MAX, 1)],
              sales=[(1, AS_OF, None, [("MAX", "Max stock", INT_MAX, "0.01")]),
                     (2, AS_OF, None, [("MAX", "Max stock", INT_MAX, "0.01")])],
              snapshots=[(AS_OF, "MAX", INT_MAX, 1)])
    marts.build_daily(con, AS_OF, AS_OF)
    marts.build_as_of(con, AS_OF)
    assert rows(con, "SELECT units FROM marts.daily_sales WHERE sale_date = ?", [AS_OF]) == [(2 * INT_MAX,)]


def test_products_that_break_the_marts_are_named_with_the_reason(tmp_path):
    from salesflow.mart_checks import check_product_assumptions

    con = connect(tmp_path)
    load_shop(con, products=[("OK-1", "Mug", "5.00", 10, 2), ("TWICE", "Pen", "1.00", 5, 1),
                             ("TWICE", "Pen bis", "1.00", 7, 1), ("free", "Sample", "0.00", 3, 1),
                             ("FREE", "Sample big", "2.00", 3, 1), ("HUGE", "Screws", "0.01", 1, 1)],
              sales=[(1, AS_OF, None, [("OK-1", "Mug", 1, "5.00"), ("OLD-9", "Gone", 1, "3.00")]),
                     (2, AS_OF, None, [("HUGE", "Screws", INT_MAX, "0.01")])],
              snapshots=[(AS_OF, "HUGE", 1, 1)])
    marts.build_daily(con, AS_OF, AS_OF)
    marts.build_as_of(con, AS_OF)
    problems = check_product_assumptions(con, AS_OF, AS_OF)
    named = {}
    for p in problems:
        named.setdefault(p["sku"], []).append(p["problem"])
    assert set(named) == {"TWICE", "free", "FREE", "OLD-9", "HUGE"}
    assert named["TWICE"] == ["listed 2 times in the catalogue: stock figures come from one of them"]
    assert len(named["free"]) == 2 and any("price 0" in p for p in named["free"])
    assert named["FREE"] == ["differs only in letter case from free: reports and spreadsheets may show "
                             "them as one product"]
    assert "missing from the catalogue" in named["OLD-9"][0] and "turnover" in named["HUGE"][0]
    # the others still have their stock rows
    assert {r[0] for r in rows(con, "SELECT sku FROM marts.stock_status WHERE as_of = ?", [AS_OF])} >= {"OK-1", "HUGE"}
