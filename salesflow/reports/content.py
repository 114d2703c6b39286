"""What a report contains, read from the marts for one kind and as-of day.

Periods (``report_period``), all ending on the as-of day, and what they are compared with
(``comparison_spans``, from ``explain.comparison_periods``; the first comparison is the main
one, behind the KPI growth):

* ``daily``: the as-of day, compared with the same weekday a week before (a Tuesday with a
  Tuesday: shops sell differently on each day of the week).
* ``weekly``: the 7 days ending on the as-of day, compared with the 7 days before and with the
  same ISO week last year (same weekdays). The weekly report runs for Sunday's partition, so
  it covers one ISO week (Mon-Sun).
* ``monthly``: the calendar month of the as-of day from the 1st up to the as-of day (the whole
  month when the as-of day is its last day, which is what the monthly report asks for),
  compared with the same span of the previous month and of the same month a year earlier:
  from its 1st to the same day of month, clipped to its length, or the whole month when the
  as-of day ends its month.

A comparison whose days ``marts.daily_sales`` lacks entirely (before the shop's history) shows
its figures as n/a rather than zeros.

Sections:

* KPI summary, computed from ``marts.daily_sales`` for the period and each comparison:
  revenue, orders, units, average order value, gross profit, gross margin (over the revenue
  whose cost is known) and cost coverage. Growth is (current - previous) / previous in
  percent, rounded half-up to cents, and empty when the previous figure is zero; for the two
  percentages the change is in points and there is no growth.
* Revenue trend: ``marts.daily_sales`` for 28 days (daily), 8 weeks (weekly) or three calendar
  months (monthly) ending on the as-of day, with the latest ``TOTAL`` forecast of
  ``ml.sales_forecast`` made on or before the as-of day (its chosen model in
  ``ml.forecast_backtest`` when it holds several) up to 28 days ahead.
* Top products: ``marts.top_products`` (window ``7d`` for weekly, ``mtd`` for monthly); for a
  daily report the day's ``marts.product_daily_sales`` ranked the same way (revenue, then sku).
* Stock alerts: the as-of day's ``marts.stock_status`` rows that are OUT_OF_STOCK or LOW or
  carry a severity other than ``none``, most severe first (out of stock before low within a
  severity), then by the money the product sells a day (28-day average units times its current
  ``raw.products`` price), with their reorder quantities.
* Anomalies: ``ml.sales_anomalies`` for days of the period, each series and day as scored by
  the latest run on or before the as-of day, most severe first.
* Expenses: ``marts.expenses_monthly`` of the as-of day's month, and ``marts.profit_monthly``
  for the three months ending with it; shown when expenses have been imported.
* Customers (weekly and monthly): from ``raw.sales`` customer ids (blank = anonymous), the
  period's identified customers, new (first sale ever in the period) and returning (bought
  before it), and the repeat rate (customers with two or more orders in the period over the
  period's customers, as ``marts.kpis.repeat_customer_rate`` counts a window); RFM segment
  counts from ``marts.customer_rfm`` as of the last day. Without any customer id up to the
  last day the report carries one line saying so instead.
* Explanation: one or two sentences on why revenue moved against the main comparison, and one
  against the year-ago comparison where it has data (``salesflow.reports.explain``).

Money stays ``Decimal``; percentages are numbers of percent (12.5 means 12.5 %).
"""

from __future__ import annotations

import calendar
import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Iterable, Sequence
from zoneinfo import ZoneInfo

import duckdb

from salesflow.fmt import span_label
from salesflow.reports import explain
from salesflow.settings import ShopSettings

KINDS = ("daily", "weekly", "monthly")
TOP_N = 10
FORECAST_AHEAD_DAYS = 28
SEVERITY_ORDER = ("critical", "high", "medium", "low", "none")
STOCK_STATUS_ORDER = ("OUT_OF_STOCK", "LOW", "DEAD", "OVERSTOCK", "OK")
CENT = Decimal("0.01")


def severity_rank(severity: str | None) -> int:
    """0 for critical .. 3 for low; unknown words after low, ``none`` and missing last."""
    word = (severity or "none").strip().lower()
    if word in SEVERITY_ORDER[:4]:
        return SEVERITY_ORDER.index(word)
    return 5 if word == "none" else 4


# -- periods ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Period:
    kind: str
    as_of: date
    start: date
    end: date
    prev_start: date
    prev_end: date
    year_start: date | None = None
    year_end: date | None = None

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def label(self) -> str:
        return span_label(self.start, self.end)

    @property
    def prev_label(self) -> str:
        return span_label(self.prev_start, self.prev_end)

    @property
    def title(self) -> str:
        return f"{self.kind.capitalize()} report"


def report_period(kind: str, as_of: date) -> Period:
    """The period a report of ``kind`` covers for ``as_of``, and the periods it is compared
    with (``explain.comparison_periods``): ``prev_*`` the main comparison, ``year_*`` the
    year-ago one (weekly, monthly)."""
    if kind == "daily":
        start = as_of
    elif kind == "weekly":
        start = as_of - timedelta(days=6)
    elif kind == "monthly":
        start = as_of.replace(day=1)
    else:
        raise ValueError(f"unknown report kind {kind!r}; expected one of {', '.join(KINDS)}")
    spans = explain.comparison_periods(kind, start, as_of)
    (_, prev_start, prev_end), year = spans[0], spans[1:]
    year_start, year_end = (year[0][1], year[0][2]) if year else (None, None)
    return Period(kind, as_of, start, as_of, prev_start, prev_end, year_start, year_end)


# column headings; the sentences name the same periods by ``explain.comparison_periods``' labels
MAIN_COMPARISON_LABELS = {"daily": "Same weekday last week", "weekly": "Previous week",
                          "monthly": "Previous month"}
YEAR_COMPARISON_LABELS = {"weekly": "Same week last year", "monthly": "Same month last year"}


def comparison_spans(period: Period) -> list[tuple[str, str, date, date]]:
    """(heading, label in a sentence, start, end) of each comparison, the main one first."""
    spans = explain.comparison_periods(period.kind, period.start, period.end)
    headings = [MAIN_COMPARISON_LABELS[period.kind], YEAR_COMPARISON_LABELS.get(period.kind)]
    return [(heading, label, start, end) for heading, (label, start, end) in zip(headings, spans)]


def trend_start(period: Period) -> date:
    if period.kind == "daily":
        return period.as_of - timedelta(days=27)
    if period.kind == "weekly":
        return period.as_of - timedelta(days=55)
    month = period.start
    for _ in range(2):
        month = (month - timedelta(days=1)).replace(day=1)
    return month


# -- tables ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    """``kind``: text, int, money, pct (a number of percent), date, month (a date shown as its
    month), dec1, dec3, num."""

    key: str
    label: str
    kind: str = "text"


@dataclass
class Table:
    title: str
    columns: tuple[Column, ...]
    rows: list[tuple]
    note: str | None = None

    def column(self, key: str) -> list:
        i = [c.key for c in self.columns].index(key)
        return [r[i] for r in self.rows]

    def records(self) -> list[dict[str, Any]]:
        keys = [c.key for c in self.columns]
        return [dict(zip(keys, r)) for r in self.rows]


@dataclass(frozen=True)
class Kpi:
    key: str
    label: str
    kind: str  # money, int or pct
    current: Decimal | int | None
    previous: Decimal | int | None
    change: Decimal | int | None
    growth_pct: Decimal | None


@dataclass(frozen=True)
class ComparedKpi:
    """One figure of a comparison period: its ``value``, and the report period's change and
    growth against it (same rules as ``Kpi``)."""

    key: str
    label: str
    kind: str
    value: Decimal | int | None
    change: Decimal | int | None
    growth_pct: Decimal | None


@dataclass(frozen=True)
class Comparison:
    """A period the report is compared with; ``days`` is how many of its days
    ``marts.daily_sales`` holds (0: before the shop's history, every value is None)."""

    label: str  # a heading: "Previous week"
    start: date
    end: date
    kpis: list[ComparedKpi]
    days: int
    base_label: str = ""  # the period in a sentence: "the previous week", "Monday 23 June 2025"

    @property
    def span_label(self) -> str:
        # a whole calendar month reads as its name; no shorter span can be mistaken for one
        return span_label(self.start, self.end)

    @property
    def available(self) -> bool:
        return self.days > 0

    def kpi(self, key: str) -> ComparedKpi:
        return next(k for k in self.kpis if k.key == key)


@dataclass(frozen=True)
class CustomerSummary:
    """Customers of the report period (identified sales only) and RFM segments on its last day.

    ``segments`` lists (segment, customers) in ``salesflow.customers.SEGMENTS`` order, empty
    when ``marts.customer_rfm`` has no rows for ``segments_as_of``."""

    customers: int
    new_customers: int
    returning_customers: int
    repeat_customers: int
    repeat_rate_pct: Decimal | None
    orders: int
    identified_orders: int
    segments: list[tuple[str, int]]
    segments_as_of: date

    @property
    def identified_share_pct(self) -> Decimal | None:
        return _ratio(self.identified_orders, self.orders, 100)

    def segment_shares(self) -> list[tuple[str, int, Decimal | None]]:
        """(segment, customers, percent of all segmented customers)."""
        total = sum(n for _name, n in self.segments)
        return [(name, n, _ratio(n, total, 100)) for name, n in self.segments]


@dataclass
class Report:
    kind: str
    period: Period
    shop_name: str
    currency: str
    timezone: str
    generated_at: datetime
    kpis: list[Kpi]
    trend: Table
    forecast: Table
    forecast_model: str | None
    forecast_as_of: date | None
    top_products: Table
    stock_alerts: Table
    stock_counts: dict[str, int]
    anomalies: Table
    expenses: Table
    profit: Table
    has_expenses: bool
    notes: list[str] = field(default_factory=list)
    # the main comparison first (its values are also each Kpi's ``previous``)
    comparisons: list[Comparison] = field(default_factory=list)
    # why revenue moved: sentences for the main comparison, then one for the year-ago one
    explanation: list[str] = field(default_factory=list)
    # weekly and monthly reports; None with a ``customers_note`` when the sales carry no ids
    customers: CustomerSummary | None = None
    customers_note: str | None = None

    @property
    def title(self) -> str:
        return self.period.title

    def kpi(self, key: str) -> Kpi:
        return next(k for k in self.kpis if k.key == key)


# -- exact arithmetic ------------------------------------------------------------------------
def _ratio(num, den, times: int = 1, places: Decimal = CENT) -> Decimal | None:
    if num is None or den is None or Decimal(den) <= 0:
        return None
    return (Decimal(num) * times / Decimal(den)).quantize(places, rounding=ROUND_HALF_UP)


def _growth(cur, prev) -> Decimal | None:
    if cur is None or prev is None or Decimal(prev) <= 0:
        return None
    return ((Decimal(cur) - Decimal(prev)) * 100 / Decimal(prev)).quantize(CENT, rounding=ROUND_HALF_UP)


def _diff(cur, prev):
    if cur is None or prev is None:
        return None
    return cur - prev


# -- reading ---------------------------------------------------------------------------------
def _has_table(con: duckdb.DuckDBPyConnection, qualified: str) -> bool:
    schema, name = qualified.split(".")
    return con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = ? AND table_name = ?", [schema, name]).fetchone()[0] > 0


def _rows(con, sql: str, params: Sequence | dict) -> list[tuple]:
    return [tuple(r) for r in con.execute(sql, params).fetchall()]


def _period_sums(con, start: date, end: date) -> dict[str, Any]:
    row = con.execute(
        """SELECT count(*), coalesce(sum(revenue), 0), coalesce(sum(orders), 0),
                  coalesce(sum(units), 0), coalesce(sum(gross_profit), 0),
                  coalesce(sum(revenue_with_cost), 0)
           FROM marts.daily_sales WHERE sale_date BETWEEN ? AND ?""", [start, end]).fetchone()
    days, revenue, orders, units, gross_profit, with_cost = row
    return {
        "days": int(days), "revenue": Decimal(revenue), "orders": int(orders),
        "units": int(units), "gross_profit": Decimal(gross_profit),
        "revenue_with_cost": Decimal(with_cost),
    }


KPI_DEFS = (
    ("revenue", "Revenue", "money"),
    ("orders", "Orders", "int"),
    ("units", "Units sold", "int"),
    ("avg_order_value", "Average order value", "money"),
    ("gross_profit", "Gross profit", "money"),
    ("gross_margin_pct", "Gross margin", "pct"),
    ("cost_coverage_pct", "Revenue with known cost", "pct"),
)


def _kpi_values(s: dict[str, Any]) -> dict[str, Any]:
    return {
        "revenue": s["revenue"], "orders": s["orders"], "units": s["units"],
        "avg_order_value": _ratio(s["revenue"], s["orders"]),
        "gross_profit": s["gross_profit"],
        "gross_margin_pct": _ratio(s["gross_profit"], s["revenue_with_cost"], 100),
        "cost_coverage_pct": _ratio(s["revenue_with_cost"], s["revenue"], 100),
    }


def load_comparisons(con, period: Period) -> tuple[list[Kpi], list[Comparison], list[str]]:
    """The KPIs of the period against the main comparison, every comparison, and notes on
    days ``marts.daily_sales`` lacks."""
    cur_sums = _period_sums(con, period.start, period.end)
    cur = _kpi_values(cur_sums)
    notes = []
    if cur_sums["days"] < period.days:
        notes.append(f"marts.daily_sales lacks {period.days - cur_sums['days']} day(s) of the "
                     "period; the figures cover the days it has.")
    comparisons = []
    for i, (label, base_label, start, end) in enumerate(comparison_spans(period)):
        sums = _period_sums(con, start, end)
        base = _kpi_values(sums) if sums["days"] else dict.fromkeys(cur)
        kpis = []
        for key, kpi_label, kind in KPI_DEFS:
            growth = None if kind == "pct" else _growth(cur[key], base[key])
            kpis.append(ComparedKpi(key, kpi_label, kind, base[key], _diff(cur[key], base[key]), growth))
        comparisons.append(Comparison(label, start, end, kpis, sums["days"], base_label))
        missing = (end - start).days + 1 - sums["days"]
        if i == 0 and missing:  # the main comparison: every gap matters
            notes.append(f"marts.daily_sales lacks {missing} day(s) of the comparison period "
                         f"({label.lower()}).")
        elif missing and sums["days"]:  # a year ago before the shop's history is simply n/a
            notes.append(f"marts.daily_sales lacks {missing} day(s) of the {label.lower()} "
                         "comparison.")
    main = comparisons[0]
    kpis = [Kpi(k.key, k.label, k.kind, cur[k.key], k.value, k.change, k.growth_pct)
            for k in main.kpis]
    return kpis, comparisons, notes


def load_kpis(con, period: Period) -> tuple[list[Kpi], list[str]]:
    """The period's KPIs against the main comparison, and notes on missing days."""
    kpis, _comparisons, notes = load_comparisons(con, period)
    return kpis, notes


TREND_COLUMNS = (Column("sale_date", "Date", "date"), Column("revenue", "Revenue", "money"),
                 Column("orders", "Orders", "int"), Column("units", "Units", "int"))
FORECAST_COLUMNS = (
    Column("ds", "Date", "date"), Column("yhat", "Forecast", "money"),
    Column("yhat_lo_80", "Low 80%", "money"), Column("yhat_hi_80", "High 80%", "money"),
    Column("yhat_lo_95", "Low 95%", "money"), Column("yhat_hi_95", "High 95%", "money"),
)


def load_trend(con, period: Period) -> Table:
    rows = _rows(con, """SELECT sale_date, revenue, orders, units FROM marts.daily_sales
                         WHERE sale_date BETWEEN ? AND ? ORDER BY sale_date""",
                 [trend_start(period), period.as_of])
    return Table("Revenue trend", TREND_COLUMNS, rows,
                 None if rows else "No daily sales in the trend window.")


def finite(value):
    """``value``, or None for NaN and infinities (a model may leave an interval undefined)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _money_or_none(value) -> Decimal | None:
    value = finite(value)
    if value is None:
        return None
    return Decimal(repr(float(value))).quantize(CENT, rounding=ROUND_HALF_UP)


def load_forecast(con, period: Period) -> tuple[Table, str | None, date | None]:
    empty = Table("Forecast", FORECAST_COLUMNS, [], "No sales forecast available.")
    if not _has_table(con, "ml.sales_forecast"):
        return empty, None, None
    made = con.execute("SELECT max(as_of) FROM ml.sales_forecast WHERE series_id = 'TOTAL' "
                       "AND as_of <= ?", [period.as_of]).fetchone()[0]
    if made is None:
        return empty, None, None
    models = [r[0] for r in con.execute(
        "SELECT DISTINCT model FROM ml.sales_forecast WHERE series_id = 'TOTAL' AND as_of = ? "
        "ORDER BY model NULLS LAST", [made]).fetchall()]
    model = models[0] if models else None
    if len(models) > 1 and _has_table(con, "ml.forecast_backtest"):
        chosen = con.execute(
            "SELECT model FROM ml.forecast_backtest WHERE series_id = 'TOTAL' AND as_of = ? "
            "AND chosen ORDER BY model LIMIT 1", [made]).fetchone()
        if chosen and chosen[0] in models:
            model = chosen[0]
    rows = _rows(con, """
        SELECT ds, yhat, yhat_lo_80, yhat_hi_80, yhat_lo_95, yhat_hi_95 FROM ml.sales_forecast
        WHERE series_id = 'TOTAL' AND as_of = ? AND model IS NOT DISTINCT FROM ?
          AND ds BETWEEN ? AND ?
        ORDER BY ds""", [made, model, trend_start(period),
                         period.as_of + timedelta(days=FORECAST_AHEAD_DAYS)])
    rows = [(r[0], *(_money_or_none(v) for v in r[1:])) for r in rows]
    note = None if rows else f"The forecast made on {made.isoformat()} has no days in this window."
    return Table("Forecast", FORECAST_COLUMNS, rows, note), model, made


TOP_COLUMNS = (
    Column("rank", "Rank", "int"), Column("sku", "SKU"), Column("product_name", "Product"),
    Column("revenue", "Revenue", "money"), Column("units", "Units", "int"),
    Column("revenue_share", "Share of revenue", "pct"),
)


def load_top_products(con, period: Period, top_n: int = TOP_N) -> Table:
    window = {"weekly": "7d", "monthly": "mtd"}.get(period.kind)
    if window is not None:
        rows = _rows(con, """
            SELECT rank, sku, coalesce(product_name, sku), revenue, units, revenue_share
            FROM marts.top_products WHERE as_of = ? AND "window" = ? AND rank <= ?
            ORDER BY rank""", [period.as_of, window, top_n])
    else:
        sold = _rows(con, """
            WITH sold AS (
                SELECT sku, sum(revenue) AS revenue, sum(units) AS units
                FROM marts.product_daily_sales WHERE sale_date BETWEEN ? AND ? GROUP BY sku),
            names AS (
                SELECT sku, any_value(product_name) AS name FROM marts.stock_status
                WHERE as_of = ? GROUP BY sku)
            SELECT s.sku, coalesce(n.name, s.sku), s.revenue, s.units,
                   sum(s.revenue) OVER () AS total
            FROM sold s LEFT JOIN names n ON n.sku = s.sku
            ORDER BY s.revenue DESC, s.sku""", [period.start, period.end, period.as_of])
        rows = [(i, sku, name, Decimal(rev), int(units), _ratio(rev, total, 100))
                for i, (sku, name, rev, units, total) in enumerate(sold[:top_n], start=1)]
    return Table("Top products", TOP_COLUMNS, rows, None if rows else "No sales in this period.")


STOCK_COLUMNS = (
    Column("severity", "Severity"), Column("status", "Status"), Column("sku", "SKU"),
    Column("product_name", "Product"), Column("stock_quantity", "Stock", "int"),
    Column("low_stock_threshold", "Threshold", "int"),
    Column("avg_daily_units_28d", "Avg daily units (28d)", "dec3"),
    Column("days_of_cover", "Days of cover", "dec1"), Column("reorder_qty", "Reorder qty", "int"),
    Column("sales_per_day", "Sales per day", "money"),
)

_SEVERITY_SQL = ("CASE lower(severity) WHEN 'critical' THEN 0 WHEN 'high' THEN 1 "
                 "WHEN 'medium' THEN 2 WHEN 'low' THEN 3 WHEN 'none' THEN 5 ELSE 4 END")
_STATUS_SQL = ("CASE status WHEN 'OUT_OF_STOCK' THEN 0 WHEN 'LOW' THEN 1 WHEN 'DEAD' THEN 2 "
               "WHEN 'OVERSTOCK' THEN 3 ELSE 4 END")


def load_stock(con, period: Period) -> tuple[Table, dict[str, int]]:
    # within a severity and status, the products that sell the most money a day come first:
    # their shortage costs the most (a catalogue of thousands has hundreds of alerts)
    price = ("(SELECT sku, CAST(max(price) AS DECIMAL(18,2)) AS price FROM raw.products "
             "GROUP BY sku)" if _has_table(con, "raw.products")
             else "(SELECT NULL::VARCHAR AS sku, NULL::DECIMAL(18,2) AS price)")
    # the quantity to order is the reorder list's (from the forecast, as the digest's workbook
    # says) when the day has one; a product missing from it has nothing to order
    listed = _has_table(con, "marts.reorder_suggestions") and con.execute(
        "SELECT count(*) > 0 FROM marts.reorder_suggestions WHERE as_of = ?", [period.as_of]).fetchone()[0]
    reorder = ("coalesce((SELECT r.suggested_qty FROM marts.reorder_suggestions r "
               "WHERE r.as_of = priced.as_of AND r.sku = priced.sku), 0)" if listed else "reorder_qty")
    rows = _rows(con, f"""
        WITH priced AS (
            SELECT s.*, CAST(round(s.avg_daily_units_28d * p.price, 2) AS DECIMAL(18,2))
                        AS sales_per_day
            FROM marts.stock_status s LEFT JOIN {price} p USING (sku)
            WHERE s.as_of = ?
              AND (s.status IN ('OUT_OF_STOCK', 'LOW') OR coalesce(s.severity, 'none') <> 'none'))
        SELECT severity, status, sku, coalesce(product_name, sku), stock_quantity,
               low_stock_threshold, avg_daily_units_28d, days_of_cover, {reorder} AS reorder_qty,
               sales_per_day
        FROM priced
        ORDER BY {_SEVERITY_SQL}, {_STATUS_SQL}, sales_per_day DESC NULLS LAST,
                 days_of_cover NULLS LAST, sku""", [period.as_of])
    counts = dict(con.execute(
        "SELECT status, count(*) FROM marts.stock_status WHERE as_of = ? GROUP BY status",
        [period.as_of]).fetchall())
    ordered = {s: int(counts.pop(s, 0)) for s in STOCK_STATUS_ORDER}
    ordered.update({str(k): int(v) for k, v in sorted(counts.items(), key=lambda kv: str(kv[0]))})
    if not any(ordered.values()):
        note = f"No stock status for {period.as_of.isoformat()}."
    else:
        note = None if rows else "No product needs attention."
    return Table("Stock alerts", STOCK_COLUMNS, rows, note), ordered


ANOMALY_COLUMNS = (
    Column("ds", "Date", "date"), Column("series_id", "Series"), Column("direction", "Direction"),
    Column("severity", "Severity"), Column("observed", "Observed", "num"),
    Column("expected", "Expected", "num"), Column("lower", "Expected low", "num"),
    Column("upper", "Expected high", "num"), Column("score", "Score", "num"),
    Column("kind", "Kind"), Column("note", "Note"),
)


def load_anomalies(con, start: date, end: date, as_of: date) -> Table:
    if not _has_table(con, "ml.sales_anomalies"):
        return Table("Anomalies", ANOMALY_COLUMNS, [], "No anomaly scores available.")
    rows = _rows(con, f"""
        SELECT ds, series_id, direction, severity, observed, expected, lower, upper, score,
               kind, note
        FROM ml.sales_anomalies
        WHERE as_of <= ? AND ds BETWEEN ? AND ?
        QUALIFY row_number() OVER (PARTITION BY series_id, ds ORDER BY as_of DESC) = 1
        ORDER BY {_SEVERITY_SQL}, abs(score) DESC NULLS LAST, ds, series_id""", [as_of, start, end])
    rows = [tuple(finite(v) for v in r) for r in rows]
    return Table("Anomalies", ANOMALY_COLUMNS, rows,
                 None if rows else "No anomalies detected in this period.")


EXPENSE_COLUMNS = (Column("month", "Month", "month"), Column("category", "Category"),
                   Column("amount", "Amount", "money"), Column("share_pct", "Share", "pct"))
PROFIT_COLUMNS = (
    Column("month", "Month", "month"), Column("revenue", "Revenue", "money"),
    Column("gross_profit", "Gross profit", "money"), Column("expenses", "Expenses", "money"),
    Column("net_profit", "Net profit", "money"),
)


def load_expenses(con, period: Period) -> tuple[Table, Table, bool]:
    month = period.as_of.replace(day=1)
    first = trend_start(report_period("monthly", period.as_of)).replace(day=1)
    if not (_has_table(con, "marts.expenses_monthly") and _has_table(con, "marts.profit_monthly")):
        note = "No expenses imported yet."
        return (Table("Expenses", EXPENSE_COLUMNS, [], note),
                Table("Net profit", PROFIT_COLUMNS, [], note), False)
    has_expenses = con.execute("SELECT count(*) FROM marts.expenses_monthly WHERE month <= ?",
                               [month]).fetchone()[0] > 0
    expenses = _rows(con, """SELECT month, category, amount, share_pct FROM marts.expenses_monthly
                             WHERE month = ? ORDER BY amount DESC, category""", [month])
    profit = []
    if has_expenses:
        profit = _rows(con, """SELECT month, revenue, gross_profit, expenses, net_profit
                               FROM marts.profit_monthly WHERE month BETWEEN ? AND ?
                               ORDER BY month""", [first, month])
    label = f"{month:%B %Y}"
    exp_note = None if expenses else (
        f"No expenses recorded for {label}." if has_expenses else "No expenses imported yet.")
    profit_note = None if profit else (
        "Net profit needs expenses; none imported yet." if not has_expenses
        else "No monthly profit figures for these months.")
    return (Table(f"Expenses, {label}", EXPENSE_COLUMNS, expenses, exp_note),
            Table("Net profit by month", PROFIT_COLUMNS, profit, profit_note), has_expenses)


NO_CUSTOMER_IDS_NOTE = ("No customer figures: the sales carry no customer ids (the core "
                        "records every sale as anonymous).")


def load_customers(con, period: Period) -> tuple[CustomerSummary | None, str | None]:
    """The period's customers and the RFM segments on its last day; (None, note) when no sale
    up to the last day carries a customer id."""
    from salesflow.customers import SEGMENTS, segment_counts

    if not _has_table(con, "raw.sales"):
        return None, NO_CUSTOMER_IDS_NOTE
    row = con.execute("""
        WITH sales AS (
            SELECT sale_date, NULLIF(trim(customer_id), '') AS customer_id
            FROM raw.sales WHERE sale_date <= $end),
        firsts AS (
            SELECT customer_id, min(sale_date) AS first_sale FROM sales
            WHERE customer_id IS NOT NULL GROUP BY 1),
        buyers AS (
            SELECT customer_id, count(*) AS orders FROM sales
            WHERE customer_id IS NOT NULL AND sale_date BETWEEN $start AND $end GROUP BY 1)
        SELECT (SELECT count(*) FROM firsts),
               count(b.customer_id),
               count(*) FILTER (WHERE f.first_sale >= $start),
               count(*) FILTER (WHERE f.first_sale < $start),
               count(*) FILTER (WHERE b.orders >= 2),
               (SELECT count(*) FROM sales WHERE sale_date BETWEEN $start AND $end),
               coalesce(sum(b.orders), 0)
        FROM buyers b JOIN firsts f USING (customer_id)""",
        {"start": period.start, "end": period.end}).fetchone()
    known, customers, new, returning, repeaters, orders, identified = (int(v) for v in row)
    if known == 0:
        return None, NO_CUSTOMER_IDS_NOTE
    segments = segment_counts(con, period.end)
    ordered = [(name, int(segments.pop(name))) for name in SEGMENTS if name in segments]
    ordered += sorted((str(k), int(v)) for k, v in segments.items())
    return CustomerSummary(
        customers=customers, new_customers=new, returning_customers=returning,
        repeat_customers=repeaters, repeat_rate_pct=_ratio(repeaters, customers, 100),
        orders=orders, identified_orders=identified, segments=ordered,
        segments_as_of=period.end), None


def explain_changes(con, period: Period, comparisons: Sequence[Comparison],
                    currency: str) -> list[str]:
    """One or two sentences on the revenue change against the main comparison, then the first
    one against the year-ago comparison, each only where the comparison has data."""
    out: list[str] = []
    for i, comp in enumerate(comparisons):
        if not comp.available:
            continue
        change = explain.revenue_change(con, (period.start, period.end), (comp.start, comp.end))
        sentences = change.sentences(currency, comp.base_label)
        out += sentences if i == 0 else sentences[:1]
    return out


def load_report(
    con: duckdb.DuckDBPyConnection,
    kind: str,
    as_of: date,
    settings: ShopSettings | None = None,
    *,
    now: datetime | None = None,
    top_n: int = TOP_N,
) -> Report:
    """Read every section of the ``kind`` report for ``as_of`` from the warehouse (read only)."""
    settings = settings or ShopSettings()
    period = report_period(kind, as_of)
    kpis, comparisons, notes = load_comparisons(con, period)
    forecast, model, made = load_forecast(con, period)
    stock, counts = load_stock(con, period)
    expenses, profit, has_expenses = load_expenses(con, period)
    generated = now or datetime.now(tz=timezone.utc)
    if generated.tzinfo is None:
        generated = generated.replace(tzinfo=timezone.utc)
    generated = generated.astimezone(ZoneInfo(settings.timezone))
    report = Report(
        kind=kind, period=period, shop_name=settings.shop_name, currency=settings.currency,
        timezone=settings.timezone, generated_at=generated, kpis=kpis,
        trend=load_trend(con, period), forecast=forecast, forecast_model=model,
        forecast_as_of=made, top_products=load_top_products(con, period, top_n),
        stock_alerts=stock, stock_counts=counts,
        anomalies=load_anomalies(con, period.start, period.end, period.as_of),
        expenses=expenses, profit=profit, has_expenses=has_expenses, notes=notes,
        comparisons=comparisons,
        explanation=explain_changes(con, period, comparisons, settings.currency),
    )
    if kind != "daily":
        report.customers, report.customers_note = load_customers(con, period)
    return report


def section_notes(report: Report) -> list[str]:
    """Every note worth printing: data gaps first, then each empty or qualified section."""
    out = list(report.notes)
    for table in (report.trend, report.forecast, report.top_products, report.stock_alerts,
                  report.anomalies, report.expenses, report.profit):
        if table.note:
            out.append(f"{table.title}: {table.note}")
    return out


def iter_tables(report: Report) -> Iterable[Table]:
    return (report.trend, report.forecast, report.top_products, report.stock_alerts,
            report.anomalies, report.expenses, report.profit)
