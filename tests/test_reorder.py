"""The reorder list: hand-computed quantities, stock-out dates, lead-time precedence, costs,
the basis of each row, the mart's asset, and the digest's workbook."""

from __future__ import annotations

import io
from datetime import date, timedelta
from decimal import Decimal

import dagster as dg
import duckdb
import pytest
from openpyxl import load_workbook

from salesflow import reorder
from salesflow.reports.reorder_xlsx import reorder_attachment, reorder_workbook_bytes
from salesflow.warehouse import connect

AS_OF = date(2025, 6, 30)
DAY = timedelta(days=1)
D = Decimal


# -- a small warehouse written by hand -----------------------------------------------------
def stock(con, sku, qty, name=None):
    con.execute("INSERT INTO marts.stock_status (as_of, sku, product_name, stock_quantity) VALUES (?, ?, ?, ?)",
                [AS_OF, sku, name or f"Product {sku}", qty])


def inventory(con, sku, category, cost):
    con.execute("INSERT INTO raw.inventory (sku, name, category, cost, updated_at) VALUES (?, ?, ?, ?, ?)",
                [sku, sku, category, cost, "2025-06-01"])


def flat_forecast(con, sku, yhat, hi95, *, days=28, model="AutoETS"):
    con.executemany(
        "INSERT INTO ml.sales_forecast (as_of, series_id, ds, yhat, yhat_p50, yhat_lo_80, yhat_hi_80, "
        "yhat_lo_95, yhat_hi_95, model) VALUES (?, ?, ?, ?, ?, 0, ?, 0, ?, ?)",
        [[AS_OF, sku, AS_OF + (i + 1) * DAY, y, y, h, h, model]
         for i, (y, h) in enumerate(zip(_as_list(yhat, days), _as_list(hi95, days)))])


def _as_list(value, days):
    return list(value) if isinstance(value, (list, tuple)) else [value] * days


def coverage(con, sku, status, method):
    con.execute("INSERT INTO ml.forecast_coverage (as_of, series_id, status, method) VALUES (?, ?, ?, ?)",
                [AS_OF, sku, status, method])


def sold(con, sku, units_per_day, days=28):
    con.executemany("INSERT INTO marts.product_daily_sales VALUES (?, ?, 1, ?, 1.00, false)",
                    [[AS_OF - i * DAY, sku, units_per_day] for i in range(days)])


@pytest.fixture
def con(tmp_path):
    with connect(tmp_path / "w.duckdb") as c:
        yield c


def build(con, default=7, by_category=None):
    reorder.build_reorder(con, AS_OF, default_lead_time_days=default, category_lead_times=by_category)
    return {r["sku"]: r for r in reorder.load_rows(con, AS_OF)}


# -- quantities ----------------------------------------------------------------------------
def test_a_flat_forecast_gives_the_hand_computed_quantity_cost_and_stockout_date(con):
    # 4 a day, the 95% band up to 8: sigma = 4 / 1.96 a day; lead time 4 days
    stock(con, "A", 5)
    inventory(con, "A", "Garden tools", D("2.50"))
    flat_forecast(con, "A", 4.0, 8.0)
    coverage(con, "A", "modelled", "AutoETS")
    row = build(con, default=4)["A"]
    # demand 4 x 4 = 16; safety 1.645 x sqrt(4 x (4/1.96)^2) = 1.645 x 8 / 1.96 = 6.714
    assert (row["demand_units"], row["safety_units"], row["target_units"]) == (D("16.00"), D("6.71"), D("22.71"))
    assert row["suggested_qty"] == 18  # ceil(22.71 - 5)
    assert row["order_cost"] == D("45.00") and row["unit_cost"] == D("2.50")
    assert row["stockout_date"] == AS_OF + 2 * DAY  # 4 after day 1, 8 > 5 after day 2
    assert (row["basis"], row["lead_time_days"], row["lead_time_source"], row["category"]) == \
        ("forecast", 4, "default", "Garden tools")


def test_a_forecast_without_spread_orders_exactly_the_shortfall(con):
    stock(con, "B", 10)
    flat_forecast(con, "B", 3.0, 3.0)
    row = build(con, default=7)["B"]
    assert (row["demand_units"], row["safety_units"], row["suggested_qty"]) == (D("21.00"), D("0.00"), 11)
    assert row["stockout_date"] == AS_OF + 4 * DAY  # 3, 6, 9, then 12 > 10


def test_stock_beyond_the_horizon_has_no_stockout_date_and_no_row_when_nothing_is_needed(con):
    stock(con, "SLOW", 30)  # 1 a day for 28 days never exceeds 30, and a week needs 7
    flat_forecast(con, "SLOW", 1.0, 1.0)
    stock(con, "RUNS_OUT", 20)  # 1 a day for 28 days exceeds 20 on day 21, beyond a week's lead
    flat_forecast(con, "RUNS_OUT", 1.0, 1.0)
    stock(con, "SHORT", 3)
    flat_forecast(con, "SHORT", 1.0, 1.0)
    rows = build(con, default=7)
    assert set(rows) == {"SHORT"}
    assert rows["SHORT"]["suggested_qty"] == 4 and rows["SHORT"]["stockout_date"] == AS_OF + 4 * DAY
    s = reorder.suggest(20, 7, [1.0] * 28, [0.0] * 28, AS_OF)
    assert s.suggested_qty == 0 and s.stockout_date == AS_OF + 21 * DAY
    assert reorder.suggest(30, 7, [1.0] * 28, [0.0] * 28, AS_OF).stockout_date is None


def test_a_lead_time_longer_than_the_forecast_repeats_its_last_week(con):
    s = reorder.suggest(0, 10, [1, 2, 3, 4, 5, 6, 7], [0] * 7, AS_OF)
    assert s.demand_units == D("34.00")  # 1..7 = 28, then 1 + 2 + 3
    assert s.suggested_qty == 34 and "longer than the 7-day forecast" in s.note


# -- lead times ----------------------------------------------------------------------------
def test_product_lead_times_beat_category_ones_which_beat_the_default(con):
    for sku, category in (("G1", "Garden tools"), ("B1", "Bakery"), ("B2", "Bakery")):
        stock(con, sku, 0)
        inventory(con, sku, category, D("1.00"))
        flat_forecast(con, sku, 1.0, 1.0)
    con.execute("INSERT INTO raw.lead_times VALUES ('B2', 10, 'lead_times.csv', now())")
    rows = build(con, default=7, by_category=reorder.parse_category_lead_times("bakery=2, Garden tools=21"))
    got = {sku: (r["lead_time_days"], r["lead_time_source"], r["suggested_qty"]) for sku, r in rows.items()}
    assert got == {"G1": (21, "category", 21), "B1": (2, "category", 2), "B2": (10, "product", 10)}
    rows = build(con, default=5)
    got = {sku: (r["lead_time_days"], r["lead_time_source"]) for sku, r in rows.items()}
    assert got == {"G1": (5, "default"), "B1": (5, "default"), "B2": (10, "product")}


def test_category_lead_times_are_parsed_strictly_naming_the_bad_entry():
    assert reorder.parse_category_lead_times("Bakery=2,Garden tools=21,") == {"bakery": 2, "garden tools": 21}
    assert reorder.parse_category_lead_times("") == {}
    for text, named in (("Bakery=2,Garden tools", "'Garden tools'"), ("Bakery=two", "'Bakery=two'"),
                        ("=3", "'=3'"), ("Bakery=-1", "'Bakery=-1'"), ("Bakery=2.5", "'Bakery=2.5'"),
                        ("Bakery=400", "'Bakery=400'"), ("Bakery=2,BAKERY=3", "'BAKERY=3'"),
                        ("Bakery=\u00b2", "'Bakery=\u00b2'")):  # a superscript two is no number
        with pytest.raises(ValueError, match=reorder.CATEGORY_ENV) as err:
            reorder.parse_category_lead_times(text)
        assert named in str(err.value), (text, str(err.value))


# -- costs and basis -----------------------------------------------------------------------
def test_an_unknown_unit_cost_leaves_the_order_cost_null(con):
    for sku in ("KNOWN", "ZERO_UNCAT", "MISSING"):
        stock(con, sku, 0)
        flat_forecast(con, sku, 1.0, 1.0)
    inventory(con, "KNOWN", "Bakery", D("0.40"))
    inventory(con, "ZERO_UNCAT", "Uncategorized", D("0.00"))  # the core's "unknown"
    rows = build(con, default=7)
    assert rows["KNOWN"]["order_cost"] == D("2.80")
    for sku in ("ZERO_UNCAT", "MISSING"):
        assert rows[sku]["suggested_qty"] == 7
        assert rows[sku]["unit_cost"] is None and rows[sku]["order_cost"] is None
        assert rows[sku]["category"] == "Uncategorized"


def test_without_a_forecast_the_recent_average_is_the_basis_and_fallbacks_are_named(con):
    stock(con, "NOFC", 3)
    sold(con, "NOFC", 1)  # 28 units in 28 days: 1 a day
    stock(con, "FB", 0)
    flat_forecast(con, "FB", 1.0, 1.0, model="RecentRate")
    coverage(con, "FB", "fallback", "RecentRate")
    rows = build(con, default=7)
    row = rows["NOFC"]
    # demand 7; Poisson sigma^2 = 1 a day: safety 1.645 x sqrt(7) = 4.352
    assert (row["basis"], row["demand_units"], row["safety_units"], row["suggested_qty"]) == \
        ("recent average", D("7.00"), D("4.35"), 9)
    assert row["stockout_date"] == AS_OF + 4 * DAY
    assert rows["FB"]["basis"] == "fallback"


def test_rebuilding_a_day_replaces_its_rows(con):
    stock(con, "A", 0)
    flat_forecast(con, "A", 2.0, 2.0)
    first = build(con, default=7)
    assert build(con, default=7) == first
    assert con.execute("SELECT count(*) FROM marts.reorder_suggestions").fetchone()[0] == 1
    con.execute("UPDATE marts.stock_status SET stock_quantity = 100")
    assert build(con, default=7) == {}


def test_the_check_names_rows_that_do_not_add_up(con):
    for sku in ("A", "B", "C"):
        stock(con, sku, 1)
        inventory(con, sku, "Bakery", D("2.00"))
        flat_forecast(con, sku, 1.0, 1.0)
    build(con, default=7)
    assert reorder.check_rows(con, AS_OF) == []
    con.execute("UPDATE marts.reorder_suggestions SET suggested_qty = 7 WHERE sku = 'A'")
    con.execute("UPDATE marts.reorder_suggestions SET order_cost = 1.00 WHERE sku = 'B'")
    con.execute("INSERT INTO marts.reorder_suggestions SELECT * FROM marts.reorder_suggestions WHERE sku = 'C'")
    assert reorder.check_rows(con, AS_OF) == [  # the first rule a row breaks
        {"sku": "A", "reason": "order qty is not target - stock rounded up"},
        {"sku": "B", "reason": "order cost is not order qty x unit cost"},
        {"sku": "C", "reason": "listed 2 times"}]


# -- the asset -----------------------------------------------------------------------------
def _materialize(path, monkeypatch, env_value=None):
    from assets.reorder import reorder_suggestions
    from resources import WarehouseResource

    if env_value is None:
        monkeypatch.delenv(reorder.CATEGORY_ENV, raising=False)
    else:
        monkeypatch.setenv(reorder.CATEGORY_ENV, env_value)
    return dg.materialize([reorder_suggestions], partition_key=AS_OF.isoformat(),
                          resources={"warehouse": WarehouseResource(database=str(path))},
                          raise_on_error=False)


def test_the_asset_writes_the_day_takes_the_stock_marts_default_and_refuses_a_bad_setting(tmp_path, monkeypatch):
    path = tmp_path / "w.duckdb"
    with connect(path) as c:
        stock(c, "A", 0)
        inventory(c, "A", "Bakery", D("1.00"))
        flat_forecast(c, "A", 1.0, 1.0)
    result = _materialize(path, monkeypatch)
    assert result.success
    meta = result.asset_materializations_for_node("marts__reorder_suggestions")[0].metadata
    assert meta["dagster/row_count"].value == 1 and meta["default_lead_time_days"].value == 7
    assert [c.passed for c in result.get_asset_check_evaluations()] == [True]
    again = _materialize(path, monkeypatch, "Bakery=3")
    assert again.success
    con = duckdb.connect(str(path), read_only=True)
    try:
        assert con.execute("SELECT sku, lead_time_days, suggested_qty FROM marts.reorder_suggestions").fetchall() \
            == [("A", 3, 3)]
    finally:
        con.close()
    bad = _materialize(path, monkeypatch, "Bakery=3,Garden")
    assert not bad.success
    failure = bad.get_step_failure_events()[0].event_specific_data.error.message
    assert "SALESFLOW_LEAD_TIME_DAYS_BY_CATEGORY" in failure and "'Garden'" in failure


# -- the workbook --------------------------------------------------------------------------
def _rows(con):
    for sku, category, cost, qty in (("B1", "Bakery", D("0.35"), 10), ("B2", "Bakery", D("0.90"), 4),
                                     ("G1", "Garden tools", D("12.00"), 3), ("G2", "Garden tools", D("4.10"), 6),
                                     ("U1", None, None, 5), ("U2", "Uncategorized", D("0.00"), 2)):
        stock(con, sku, 0, name="=HYPERLINK(\"x\")" if sku == "G2" else None)
        if category:  # U1 is not in the inventory, U2 has the core's unknown cost
            inventory(con, sku, category, cost)
        flat_forecast(con, sku, qty / 7, qty / 7)
    reorder.build_reorder(con, AS_OF, default_lead_time_days=7)
    return reorder.load_rows(con, AS_OF)


def _sheet_rows(data: bytes):
    ws = load_workbook(io.BytesIO(data))["Reorder"]
    return ws, [[c.value for c in row] for row in ws.iter_rows()]


def test_the_workbook_groups_by_category_with_subtotals_that_sum_to_the_grand_total(con):
    rows = _rows(con)
    assert [r["category"] for r in rows] == ["Bakery", "Bakery", "Garden tools", "Garden tools", "Uncategorized",
                                                "Uncategorized"]
    ws, cells = _sheet_rows(reorder_workbook_bytes(rows, "EUR", as_of=AS_OF))
    header = next(i for i, r in enumerate(cells) if r[0] == "SKU")
    titles = cells[header]
    qty, cost = titles.index("Order qty"), titles.index("Order cost (EUR)")
    assert "Reorder list as of 2025-06-30" in cells[0][0]
    subtotals = {r[0]: r for r in cells if isinstance(r[0], str) and r[0].startswith("Subtotal ")}
    grand = next(r for r in cells if r[0] == "Grand total")
    assert list(subtotals) == ["Subtotal Bakery", "Subtotal Garden tools", "Subtotal Uncategorized"]
    # Excel keeps numbers as floats: compared as the cents they show
    assert [(s[qty], s[cost] and D(str(s[cost])).quantize(D("0.01"))) for s in subtotals.values()] == \
        [(14, D("7.10")), (9, D("60.60")), (7, None)]  # no known cost in Uncategorized: blank
    assert sum(s[qty] for s in subtotals.values()) == grand[qty] == 30
    assert sum(D(str(s[cost] or 0)) for s in subtotals.values()) == D(str(grand[cost])) == D("67.7")
    assert "2 of 6 products without a known unit cost" in grand[titles.index("Note")]
    assert "2 of 2 products" in subtotals["Subtotal Uncategorized"][titles.index("Note")]
    assert "(2 without a known unit cost)" in cells[1][0]
    # money cells carry a money format, the formula-like name stays text
    money_cell = ws.cell(row=[i for i, r in enumerate(cells) if r[0] == "G1"][0] + 1, column=cost + 1)
    assert money_cell.number_format == "#,##0.00" and money_cell.value == 36
    name_cell = ws.cell(row=[i for i, r in enumerate(cells) if r[0] == "G2"][0] + 1, column=2)
    assert name_cell.data_type == "s" and name_cell.quotePrefix
    assert ws.column_dimensions["B"].width >= len("Product") + 2


def test_the_attachment_is_the_days_workbook_or_none_when_there_is_nothing_to_order(con):
    assert reorder_attachment(con, AS_OF, "EUR") is None
    _rows(con)
    name, data = reorder_attachment(con, AS_OF, "GBP")
    assert name == "reorder_2025-06-30.xlsx"
    _, cells = _sheet_rows(data)
    assert any(r[0] == "Grand total" for r in cells) and "Order cost (GBP)" in next(r for r in cells if r[0] == "SKU")
    assert reorder_attachment(con, AS_OF + DAY, "EUR") is None


def test_the_summary_of_a_list_without_any_known_cost_names_no_order_cost(con):
    rows = [r for r in _rows(con) if r["unit_cost"] is None]  # U1 and U2: no known unit cost
    _, cells = _sheet_rows(reorder_workbook_bytes(rows[:1], "EUR", as_of=AS_OF))
    assert cells[1][0] == "1 product to order, 5 units, order cost unknown (no known unit cost)"
    _, cells = _sheet_rows(reorder_workbook_bytes(rows, "EUR", as_of=AS_OF))
    assert cells[1][0] == "2 products to order, 7 units, order cost unknown (no known unit cost)"
