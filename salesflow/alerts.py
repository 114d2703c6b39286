"""Anomaly and stock alerts, ranked by the money at stake, e-mailed as one digest per run, each
alert exactly once.

Which alerts an as-of day raises
--------------------------------
* Anomalies: the rows ``ml.sales_anomalies`` holds for that ``as_of`` run with a day in the
  last ``lookback_days`` (default 7), or, for a stock-out, outage or level shift (one row dated
  by its first day), a first day in the last ``EVENT_LOOKBACK_DAYS`` (28), and a severity
  other than ``none``. Key:
  ``anomaly:<series_id>:<ds>:<direction>``, so a day flagged again by a later run is not
  announced twice.
* Stock: the products ``marts.stock_status`` shows as OUT_OF_STOCK or LOW, or with another
  status and a severity other than ``none`` (cover shorter than the lead time). Key:
  ``stock:<sku>:<status>:<episode start>``, where the episode is the run of as-of days, up to
  this one, on which the product was alerting with the same status. A product that stays LOW
  for two weeks is announced once; when it runs out (a new status) or comes back after a day
  without an alert (a new episode), it is announced again. A change of severity within the
  same status is not announced again.

What an alert is worth (``value``, in the shop's currency, with ``value_note``)
-------------------------------------------------------------------------------
* Stock: the revenue at risk over the lead time. Demand over the lead time is, per product,
  the first available of: ``marts.reorder_suggestions`` of the as-of day (its forecast units
  over the lead time), the sum of the product's ``ml.sales_forecast`` of that run over the
  lead time, or ``avg_daily_units_28d`` x the lead time. Only what the stock cannot cover is
  at risk: units short = max(0, demand - stock), value = units short x price. Where the unit
  cost is known (as in the marts: cost > 0 or a category), the gross margin at risk is
  units short x (price - cost). A product with no sale in the last ``DEAD_AFTER_DAYS`` (90)
  days has no demand to lose: value 0, severity ``info`` (it stays on the full list, never
  among the critical ones).
* Anomaly: the revenue above (+) or below (-) expected. ``TOTAL`` rows are revenue: observed
  - expected. Product rows are units (a stock drop's rows are units of stock):
  (observed - expected) x the product's price. Multi-day events sum their days.

Severity (``money_severity``) follows the money, measured against the shop's average daily
revenue over the last ``DAY_REVENUE_DAYS`` (28) days, and whether the product is a *key
product*: one of the best sellers that together make the first ``KEY_PRODUCTS_SHARE`` (50%)
of the shop's revenue over ``SHARE_DAYS`` (90) days (its "A" products):

* ``critical``: |value| >= ``CRITICAL_DAY_SHARE`` (50%) of a day's revenue, or >=
  ``HIGH_DAY_SHARE`` (20%) on a key product;
* ``high``: |value| >= ``HIGH_DAY_SHARE`` (20%), or >= ``MEDIUM_DAY_SHARE`` (5%) on a key
  product;
* ``medium``: |value| >= ``MEDIUM_DAY_SHARE`` (5%), or any money at stake on a key product;
* ``low``: any other money at stake; ``info``: nothing at stake (the stock covers the lead
  time, or no sale in 90 days).

The shop's own figure (``TOTAL``) is measured by the money alone.

Alerts are ranked by |value|, largest first (severity, then key, break ties).

The digest
----------
One e-mail per recipient list (HTML and text, ``salesflow.email_render``): a summary line
(counts, money at stake), the top N alerts (``SALESFLOW_DIGEST_TOP_N``, default 10) as cards
(a product whose sales stopped and whose stock is at 0 is one card for its two alerts),
"and M more" with the full list attached as xlsx, and, on a digest with stock alerts, the
reorder list (``salesflow.reports.reorder_xlsx``) when it has rows. Money at stake is the stock
revenue at risk plus the sales below expected; sales above expected are counted apart. On a day
with both a shop-wide (``TOTAL``) gap and product gaps, the larger of the two counts, as the
shop's sales hold its products'. The
first digest a warehouse sends (no
alert was ever sent), or one with more than ``SUMMARY_FACTOR`` x N new alerts at once (a
backfill, a new shop), is a *current state* summary instead: counts by kind and severity, the
top N, the full list attached, without announcing every product. Later digests carry the new
episodes only, as every alert is sent once. New alerts with nothing at stake (``info``) alone
do not make an e-mail: they stay pending and go out with the next digest.

The ledger
----------
``ops.alerts_pending`` holds alerts found and not yet delivered, ``ops.alerts_sent`` the
delivered ones, and ``ops.alert_deliveries`` one row per digest with its Message-ID, its
alert keys, its status and, while it is unconfirmed, the message itself. A run

1. records its new alerts as pending (a key already pending or sent is skipped), and commits;
2. finishes any delivery a previous run left in ``sending`` (see below);
3. sends every pending alert, grouped by recipient list, one digest per group, ranked by
   value: it first commits a ``sending`` delivery row, then hands the message to the
   SMTP server (or writes it to the outbox), then, in one transaction, moves the digest's
   alerts from pending to sent and marks the delivery ``sent``.

When the server cannot be reached or refuses the message, the delivery is marked ``failed``,
the alerts stay pending, and ``AlertDeliveryError`` says so; the next run sends them, once.

The window a ledger cannot close: if the process dies after the server accepted a digest and
before the ledger commit (or the connection breaks after the message data was sent, so the
answer is unknown), the delivery stays ``sending``. The next run then sends the very same
message again, byte for byte with the same Message-ID (``unconfirmed="resend"``, the default:
an alert is never lost, and mail programs that de-duplicate by Message-ID show it once), or
marks it sent without sending (``unconfirmed="assume_sent"``: never twice, possibly lost).
Two runs never send at once: DuckDB lets one process write the warehouse at a time.
"""

from __future__ import annotations

import io
import json
import math
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from email.message import EmailMessage
from email.utils import formataddr, getaddresses, make_msgid
from typing import Any, Iterable, Sequence

import duckdb
import openpyxl
import pandas as pd
from openpyxl.styles import Font

from salesflow.anomalies import MULTI_DAY_KINDS
from salesflow.email_render import render
from salesflow.errors import AlertDeliveryError, MailDeliveryError
from salesflow.mailer import (Attachment, Delivery, Mailer, Recipients, build_message, sender_domain,
                              stored_message)
from salesflow.fmt import fmt_value
from salesflow.marts import DEAD_AFTER_DAYS, DEFAULT_LEAD_TIME_DAYS
from salesflow.reorder import category_lead_times_from_env, lead_time_for, product_lead_times
from salesflow.reports.charts import anomaly_chart_png
from salesflow.reports.content import finite, severity_rank
from salesflow.reports.excel import set_text
from salesflow.reports.explain import explain_total_anomaly
from salesflow.reports.files import report_message
from salesflow.reports.reorder_xlsx import reorder_attachment
from salesflow.settings import ShopSettings, whole_number_from_env
from salesflow.warehouse import OPS_DDL, has_table, registered, transaction

ALERT_DDL = {name: OPS_DDL[name] for name in ("ops.alert_deliveries",)}
ANOMALY_LOOKBACK_DAYS = 7
# a stock-out, outage or level shift that began up to this many days ago is still news
EVENT_LOOKBACK_DAYS = 28
STATUS_LABELS = {"OUT_OF_STOCK": "out of stock", "LOW": "low on stock", "DEAD": "not selling",
                 "OVERSTOCK": "overstocked", "OK": "stock cover short"}
TOP_N_ENV = "SALESFLOW_DIGEST_TOP_N"
DEFAULT_TOP_N = 10
# more new alerts than this times the top N at once: a current-state summary, not a list
SUMMARY_FACTOR = 2
# money is weighed against the average day of the last DAY_REVENUE_DAYS, and a product's share
# of revenue over SHARE_DAYS (see money_severity)
DAY_REVENUE_DAYS = 28
SHARE_DAYS = 90
CRITICAL_DAY_SHARE = Decimal("0.50")
HIGH_DAY_SHARE = Decimal("0.20")
MEDIUM_DAY_SHARE = Decimal("0.05")
KEY_PRODUCTS_SHARE = Decimal("0.50")
CENT = Decimal("0.01")


def utcnow() -> datetime:
    return datetime.now(tz=timezone.utc).replace(tzinfo=None)


def ensure_alert_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS ops")
    for name in ("ops.alerts_pending", "ops.alerts_sent"):
        con.execute(OPS_DDL[name])
    for ddl in ALERT_DDL.values():
        con.execute(ddl)


# -- what an alert is worth ------------------------------------------------------------------
def digest_top_n(environ=None) -> int:
    """``SALESFLOW_DIGEST_TOP_N``: how many alerts a digest shows as cards (default 10)."""
    return whole_number_from_env(TOP_N_ENV, DEFAULT_TOP_N, environ=environ)


def _dec(value) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return value
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else Decimal(repr(value))


def _cents(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class ProductFacts:
    name: str | None
    price: Decimal | None
    cost: Decimal | None  # the unit cost where it is known
    share: Decimal  # of the shop's revenue over SHARE_DAYS, 0..1
    last_sale: date | None
    category: str | None = None
    key: bool = False  # among the best sellers making KEY_PRODUCTS_SHARE of the revenue


@dataclass(frozen=True)
class MoneyContext:
    """What the money of an as-of day's alerts is measured against."""
    as_of: date
    day_revenue: Decimal  # the shop's average daily revenue over DAY_REVENUE_DAYS
    products: dict[str, ProductFacts]
    lead_time_days: int = DEFAULT_LEAD_TIME_DAYS

    def product(self, sku: str) -> ProductFacts:
        return self.products.get(sku) or ProductFacts(None, None, None, Decimal(0), None, None)

    def dead(self, sku: str) -> bool:
        last = self.product(sku).last_sale
        return last is None or last < self.as_of - timedelta(days=DEAD_AFTER_DAYS - 1)


_PRODUCT_FACTS_SQL = """
    WITH cat AS (SELECT sku, any_value(name) AS name, any_value(price) AS price
                 FROM raw.products GROUP BY sku),
    inv AS (SELECT sku, any_value(cost) AS cost, any_value(category) AS category
            FROM raw.inventory GROUP BY sku),
    sold AS (SELECT sku, sum(revenue) FILTER (WHERE sale_date >= $from_share) AS revenue,
                    sum(units) FILTER (WHERE sale_date >= $from_share) AS units,
                    max(sale_date) FILTER (WHERE units > 0) AS last_sale
             FROM marts.product_daily_sales WHERE sale_date <= $as_of GROUP BY sku),
    skus AS (SELECT sku FROM cat UNION SELECT sku FROM sold)
    SELECT k.sku, c.name,
           coalesce(c.price, CAST(s.revenue / nullif(s.units, 0) AS DECIMAL(18,2))),
           CASE WHEN i.cost > 0 OR coalesce(i.category, 'Uncategorized') <> 'Uncategorized'
                THEN i.cost END,
           coalesce(s.revenue, 0), s.last_sale, i.category
    FROM skus k LEFT JOIN cat c ON c.sku = k.sku LEFT JOIN inv i ON i.sku = k.sku
    LEFT JOIN sold s ON s.sku = k.sku"""


def money_context(con: duckdb.DuckDBPyConnection, as_of: date, *,
                  lead_time_days: int = DEFAULT_LEAD_TIME_DAYS) -> MoneyContext:
    day_revenue = Decimal(0)
    if has_table(con, "marts", "daily_sales"):
        total = con.execute(
            "SELECT sum(revenue) FROM marts.daily_sales WHERE sale_date BETWEEN ? AND ?",
            [as_of - timedelta(days=DAY_REVENUE_DAYS - 1), as_of]).fetchone()[0]
        day_revenue = Decimal(total or 0) / DAY_REVENUE_DAYS
    products: dict[str, ProductFacts] = {}
    if all(has_table(con, *t) for t in (("raw", "products"), ("raw", "inventory"),
                                        ("marts", "product_daily_sales"))):
        rows = con.execute(_PRODUCT_FACTS_SQL, {
            "as_of": as_of, "from_share": as_of - timedelta(days=SHARE_DAYS - 1)}).fetchall()
        shop = sum((Decimal(r[4]) for r in rows), Decimal(0))
        before = Decimal(0)  # the share of the better sellers
        for sku, name, price, cost, revenue, last, category in sorted(
                rows, key=lambda r: (-Decimal(r[4]), r[0])):
            share = Decimal(revenue) / shop if shop > 0 else Decimal(0)
            key = share > 0 and before < KEY_PRODUCTS_SHARE
            before += share
            products[sku] = ProductFacts(name, _dec(price), _dec(cost), share, last, category, key)
    return MoneyContext(as_of, day_revenue, products, lead_time_days)


def money_severity(value: Decimal | None, day_revenue: Decimal, key: bool = False) -> str:
    """The severity of ``value`` at stake for a shop selling ``day_revenue`` a day, on a key
    product or not. See the module docstring."""
    if value is None:
        return "low"
    v = abs(value)
    if v == 0:
        return "info"
    ratio = v / day_revenue if day_revenue > 0 else Decimal("Infinity")
    if ratio >= CRITICAL_DAY_SHARE or (key and ratio >= HIGH_DAY_SHARE):
        return "critical"
    if ratio >= HIGH_DAY_SHARE or (key and ratio >= MEDIUM_DAY_SHARE):
        return "high"
    if ratio >= MEDIUM_DAY_SHARE or key:
        return "medium"
    return "low"


def alert_rank(value: Decimal | None, severity: str, kind: str, key: str) -> tuple:
    """Largest money first; severity, kind and key break ties."""
    return (-abs(value or Decimal(0)), severity_rank(severity), kind, key)


# -- alerts ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Alert:
    key: str
    kind: str  # "anomaly" or "stock"
    severity: str
    title: str
    as_of: date
    details: dict[str, Any] = field(default_factory=dict)
    value: Decimal | None = None
    value_note: str = ""

    def payload(self) -> str:
        body = {"severity": self.severity, "title": self.title, "as_of": self.as_of.isoformat(),
                "value": None if self.value is None else str(self.value),
                "value_note": self.value_note, **self.details}
        return json.dumps(body, default=str, sort_keys=True)


def _num(value, places: int = 2) -> str:
    return "n/a" if value is None else f"{float(value):,.{places}f}"


def _units(value) -> str:
    if value is None:
        return "n/a"
    v = float(value)
    if abs(v - round(v)) < 0.05:
        n = int(round(v))
        return f"{n:,} unit{'' if n == 1 else 's'}"
    return f"{v:,.1f} units"


def _money(value, currency: str) -> str:
    return fmt_value(value, "money", currency)  # "n/a" for None


def _day(d: date) -> str:
    return f"{d:%a %d %b %Y}"


_EVENT_SPAN = re.compile(r"(\d+) open days? so far \(since [^,]+, last (\w{3} \d{2} \w{3} \d{4})\)")


def _event_span(note: str | None) -> tuple[int | None, date | None]:
    """The open days and last day of a multi-day event, from its note."""
    m = _EVENT_SPAN.search(note or "")
    if not m:
        return None, None
    try:
        return int(m.group(1)), datetime.strptime(m.group(2), "%a %d %b %Y").date()
    except ValueError:
        return int(m.group(1)), None


def _sold_again(con, series: str, after: date, as_of: date) -> date | None:
    """The first day after ``after`` (up to ``as_of``) on which the series sold: an ended
    stock-out or outage."""
    if series == "TOTAL":
        if not has_table(con, "marts", "daily_sales"):
            return None
        return con.execute("SELECT min(sale_date) FROM marts.daily_sales WHERE sale_date > ? "
                           "AND sale_date <= ? AND revenue > 0", [after, as_of]).fetchone()[0]
    if not has_table(con, "marts", "product_daily_sales"):
        return None
    return con.execute("SELECT min(sale_date) FROM marts.product_daily_sales WHERE sku = ? AND "
                       "sale_date > ? AND sale_date <= ? AND units > 0",
                       [series, after, as_of]).fetchone()[0]


def _explain_total(con, day: date, observed, expected, end: date | None,
                   currency: str) -> str | None:
    """Which categories (or products) made the shop's gap, in one sentence."""
    if observed is None or expected is None:
        return None
    return explain_total_anomaly(con, day, observed, expected, end=end, currency=currency)


def _anomaly_statement(con, as_of: date, series: str, ds: date, kind: str, direction: str,
                       observed, expected, lower, upper, note: str | None,
                       currency: str) -> tuple[str, str]:
    """One statement of an anomaly's facts, and the day or span it covers."""
    total = series == "TOTAL"

    def amount(v):
        return _money(_cents(_dec(v)), currency) if total else _units(v)

    verb = "was" if total else "were"

    if kind in MULTI_DAY_KINDS:
        days, last = _event_span(note)
        span = (f"{days} open day{'' if days == 1 else 's'}, {_day(ds)} to {_day(last)}"
                if days and last else f"the days since {_day(ds)}")
        since = f"since {ds.isoformat()}"
        if kind in ("stockout", "outage"):
            again = _sold_again(con, series, last or ds, as_of)
            what = "No sales at all in the shop" if total else "No sales"
            tail = (f"; selling again since {_day(again)}" if again else
                    f"; still no sale up to {_day(as_of)}")
            if again:
                since = f"{ds.isoformat()} to {(last or ds).isoformat()}"
            return f"{what} for {span}, where {amount(expected)} {verb} expected{tail}.", since
        exp = float(expected or 0)
        ratio = float(observed or 0) / exp if exp > 0 else None
        rel = ("above" if direction == "up" else "below") if ratio is None else (
            f"{(ratio - 1) * 100:.0f}% above" if ratio >= 1 else f"{(1 - ratio) * 100:.0f}% below")
        return (f"Sales ran {rel} the expected level for {span}: {amount(observed)} where "
                f"{amount(expected)} {verb} expected.", since)
    if kind == "stock_drop":
        lost = float(expected or 0) - float(observed or 0)
        return (f"Stock on {_day(ds)}: {_units(observed)} where {_units(expected)} were expected; "
                f"{_units(lost)} went missing without a sale (breakage, theft or a miscount?).",
                f"on {ds.isoformat()}")
    band = f" (usual range {amount(lower)} to {amount(upper)})" if lower is not None and upper is not None else ""
    what = "Shop revenue" if total else "Sales"
    return (f"{what} on {_day(ds)}: {amount(observed)} where {amount(expected)} {verb} expected{band}.",
            f"on {ds.isoformat()}")


def anomaly_alerts(con: duckdb.DuckDBPyConnection, as_of: date, *,
                   lookback_days: int = ANOMALY_LOOKBACK_DAYS,
                   money: MoneyContext | None = None, currency: str = "") -> list[Alert]:
    if not has_table(con, "ml", "sales_anomalies"):
        return []
    money = money or money_context(con, as_of)
    names = {}
    if has_table(con, "marts", "stock_status"):
        names = dict(con.execute(
            "SELECT sku, any_value(product_name) FROM marts.stock_status WHERE as_of = ? GROUP BY sku",
            [as_of]).fetchall())
    # a stock-out, outage or level shift is one row dated by its first day, which may lie before
    # the window when the event was confirmed later: the run writes it while it reaches into its
    # lookback, and the ledger mails its key once; one that began more than EVENT_LOOKBACK_DAYS
    # ago is not news
    rows = con.execute(
        """SELECT series_id, ds, direction, severity, observed, expected, lower, upper, score,
                  kind, note
           FROM ml.sales_anomalies
           WHERE as_of = ? AND ds <= ? AND (ds >= ? OR (list_contains(?, kind) AND ds >= ?))
             AND coalesce(lower(severity), 'none') <> 'none'
           QUALIFY row_number() OVER (PARTITION BY series_id, ds, direction
                                      ORDER BY abs(score) DESC NULLS LAST) = 1
           ORDER BY ds, series_id""",
        [as_of, as_of, as_of - timedelta(days=lookback_days - 1), list(MULTI_DAY_KINDS),
         as_of - timedelta(days=max(lookback_days, EVENT_LOOKBACK_DAYS) - 1)]).fetchall()
    out = []
    for row in rows:
        series, ds, direction, effect, observed, expected, lower, upper, score, kind, note = (
            finite(v) for v in row)
        series = str(series)
        direction = str(direction).lower()
        total = series == "TOTAL"
        facts = money.product(series)
        name = None if total else (names.get(series) or facts.name)
        label = "Total sales" if total else (f"{name} ({series})" if name else series)
        gap = None if observed is None or expected is None else _dec(observed) - _dec(expected)
        if gap is None:
            value, value_note = None, "no expected figure"
        elif total:
            value = _cents(gap)
            value_note = "revenue above expected" if value > 0 else "revenue below expected"
        elif facts.price is not None:
            value = _cents(gap * facts.price)
            if kind == "stock_drop":
                value_note = f"stock lost, at the selling price of {_money(facts.price, currency)}"
            else:
                value_note = (f"revenue {'above' if gap > 0 else 'below'} expected "
                              f"({_units(abs(gap))} x {_money(facts.price, currency)})")
        else:
            value, value_note = None, "no price known"
        severity = money_severity(value, money.day_revenue, not total and facts.key)
        statement, since = _anomaly_statement(con, as_of, series, ds, str(kind), direction,
                                              observed, expected, lower, upper, note, currency)
        end = _event_span(note)[1] if kind in MULTI_DAY_KINDS else None
        explanation = _explain_total(con, ds, observed, expected, end, currency) if total else None
        title = f"{label}: {statement}"
        out.append(Alert(
            key=f"anomaly:{series}:{ds.isoformat()}:{row[2]}", kind="anomaly",
            severity=severity, title=title, as_of=as_of, value=value, value_note=value_note,
            details={"series_id": series, "label": label, "name": name, "ds": ds.isoformat(),
                     "direction": row[2], "observed": observed, "expected": expected,
                     "lower": lower, "upper": upper, "score": score, "anomaly_kind": kind,
                     "effect_severity": effect, "statement": statement, "since": since,
                     "explanation": explanation,
                     "share_pct": None if total else float(round(facts.share * 100, 2)),
                     "key_product": not total and facts.key}))
    return out


_STOCK_ALERTS_SQL = """
    WITH alerting AS (
        SELECT *, status IN ('OUT_OF_STOCK', 'LOW') OR coalesce(lower(severity), 'none') <> 'none'
                  AS is_alert
        FROM marts.stock_status WHERE as_of <= $as_of),
    cur AS (SELECT * FROM alerting WHERE as_of = $as_of AND is_alert),
    hist AS (
        SELECT h.sku, h.as_of, h.is_alert AND h.status = c.status AS same
        FROM alerting h JOIN cur c ON c.sku = h.sku),
    last_break AS (SELECT sku, max(as_of) AS day FROM hist WHERE NOT same GROUP BY sku),
    episode AS (
        SELECT h.sku, min(h.as_of) AS start
        FROM hist h LEFT JOIN last_break b ON b.sku = h.sku
        WHERE h.same AND (b.day IS NULL OR h.as_of > b.day)
        GROUP BY h.sku)
    SELECT c.sku, coalesce(c.product_name, c.sku), c.status, lower(c.severity), c.stock_quantity,
           c.low_stock_threshold, c.avg_daily_units_28d, c.days_of_cover, c.reorder_qty,
           e.start
    FROM cur c JOIN episode e ON e.sku = c.sku
    ORDER BY c.sku"""


@dataclass(frozen=True)
class Demand:
    units: Decimal  # expected over the lead time
    lead_time_days: int
    basis: str  # what the units come from, said in the alert
    stockout_date: date | None = None


def lead_times(con: duckdb.DuckDBPyConnection, default: int = DEFAULT_LEAD_TIME_DAYS):
    """``(sku, category) -> days``: the product's imported lead time, else its category's
    (``SALESFLOW_LEAD_TIME_DAYS_BY_CATEGORY``), else ``default``, as the reorder list does."""
    product, by_category = product_lead_times(con), category_lead_times_from_env()
    return lambda sku, category: lead_time_for(sku, category, product=product,
                                               by_category=by_category, default=default)[0]


def stock_demand(con: duckdb.DuckDBPyConnection, as_of: date, *,
                 lead_time_days: int = DEFAULT_LEAD_TIME_DAYS,
                 categories: dict[str, str | None] | None = None) -> dict[str, Demand]:
    """Per sku, the units expected over its lead time from the best basis the warehouse holds
    for ``as_of``: ``marts.reorder_suggestions``, else the sku's ``ml.sales_forecast`` of that
    run covering the whole lead time (the 28-day average is the caller's last resort)."""
    out: dict[str, Demand] = {}
    lead_of = lead_times(con, lead_time_days)
    categories = categories or {}
    if has_table(con, "ml", "sales_forecast"):
        days: dict[str, list] = {}
        for sku, ds, yhat in con.execute(
                "SELECT series_id, ds, greatest(coalesce(yhat, 0), 0) FROM ml.sales_forecast "
                "WHERE as_of = ? AND ds > ? AND series_id <> 'TOTAL' ORDER BY series_id, ds",
                [as_of, as_of]).fetchall():
            days.setdefault(sku, []).append((ds, yhat))
        for sku, rows in days.items():
            lead = lead_of(sku, categories.get(sku))
            within = [y for ds, y in rows if ds <= as_of + timedelta(days=lead)]
            units = _dec(sum(within))
            # a forecast shorter than the lead time, or with a day not a number, is no basis
            if (lead > 0 and units is not None
                    and len({ds for ds, _ in rows if ds <= as_of + timedelta(days=lead)}) == lead):
                out[sku] = Demand(units, lead, f"sales forecast over the {lead}-day lead time")
    if has_table(con, "marts", "reorder_suggestions"):
        for sku, units, lead, basis, stockout in con.execute(
                "SELECT sku, demand_units, lead_time_days, basis, stockout_date "
                "FROM marts.reorder_suggestions WHERE as_of = ?", [as_of]).fetchall():
            if units is None or lead is None:
                continue
            out[sku] = Demand(_dec(units), int(lead),
                              f"reorder list, {basis or 'forecast'} over the {int(lead)}-day "
                              "lead time", stockout)
    return out


def stock_alerts(con: duckdb.DuckDBPyConnection, as_of: date, *,
                 money: MoneyContext | None = None, currency: str = "") -> list[Alert]:
    if not has_table(con, "marts", "stock_status"):
        return []
    money = money or money_context(con, as_of)
    demand = stock_demand(con, as_of, lead_time_days=money.lead_time_days,
                          categories={k: p.category for k, p in money.products.items()})
    lead_of = lead_times(con, money.lead_time_days)
    out = []
    for sku, name, status, _ratio_severity, stock, threshold, avg_units, cover, reorder, start in \
            con.execute(_STOCK_ALERTS_SQL, {"as_of": as_of}).fetchall():
        facts = money.product(sku)
        what = STATUS_LABELS.get(status, status.lower())
        lead = lead_of(sku, facts.category)
        d = demand.get(sku) or Demand(
            (_dec(avg_units) or Decimal(0)) * lead, lead,
            f"28-day average of {_num(avg_units, 2)} units a day x the {lead}-day lead time")
        have = Decimal(max(int(stock or 0), 0))
        short = max(Decimal(0), d.units - have)
        margin = None
        if money.dead(sku):
            value = Decimal("0.00")
            last = facts.last_sale
            value_note = ("no sale in the last 90 days" if last is None else
                          f"no sale since {last.isoformat()}") + ": no demand to lose"
            statement = (f"{what.capitalize()}" + ("" if status == "OUT_OF_STOCK" else f" ({_units(stock)} left)")
                         + (", and never sold." if last is None else f", and not sold since {_day(last)}."))
            severity = "info"
        else:
            value = _cents(short * facts.price) if facts.price is not None else None
            if facts.price is not None and facts.cost is not None:
                margin = _cents(short * (facts.price - facts.cost))
            value_note = ("no price known" if value is None else
                          f"revenue at risk over the {d.lead_time_days}-day lead time")
            left = "none left" if have == 0 else f"{_units(have)} left"
            covered = ("the stock covers it" if short == 0 else
                       "none of it is covered" if have == 0 else f"{_units(short)} short")
            statement = (f"{what.capitalize()}: {left}"
                         + (f" (threshold {threshold})" if status == "LOW" else "")
                         + f"; {_units(d.units)} expected to sell over the "
                           f"{d.lead_time_days}-day lead time, {covered}.")
            if d.stockout_date and have > 0:
                statement += f" Projected to run out on {_day(d.stockout_date)}."
            severity = money_severity(value, money.day_revenue, facts.key)
        label = f"{name} ({sku})"
        title = f"{label}: {statement}"
        out.append(Alert(
            key=f"stock:{sku}:{status}:{start.isoformat()}", kind="stock",
            severity=severity, title=title, as_of=as_of, value=value, value_note=value_note,
            details={"sku": sku, "product_name": name, "name": name, "label": label,
                     "status": status, "stock_quantity": stock, "low_stock_threshold": threshold,
                     "avg_daily_units_28d": avg_units, "days_of_cover": cover,
                     "reorder_qty": reorder, "since": start.isoformat(),
                     "demand_units": float(round(d.units, 1)), "units_short": float(round(short, 1)),
                     "lead_time_days": d.lead_time_days, "basis": d.basis,
                     "margin_at_risk": None if margin is None else str(margin),
                     "statement": statement,
                     "share_pct": float(round(facts.share * 100, 2)),
                     "key_product": facts.key}))
    return out


def build_alerts(con: duckdb.DuckDBPyConnection, as_of: date, *,
                 lookback_days: int = ANOMALY_LOOKBACK_DAYS, currency: str | None = None,
                 lead_time_days: int = DEFAULT_LEAD_TIME_DAYS) -> list[Alert]:
    """The as-of day's anomaly and stock alerts, largest money at stake first."""
    currency = ShopSettings.from_env().currency if currency is None else currency
    money = money_context(con, as_of, lead_time_days=lead_time_days)
    alerts = (anomaly_alerts(con, as_of, lookback_days=lookback_days, money=money, currency=currency)
              + stock_alerts(con, as_of, money=money, currency=currency))
    return sorted(alerts, key=lambda a: alert_rank(a.value, a.severity, a.kind, a.key))


# -- the ledger ------------------------------------------------------------------------------
def record_pending(con: duckdb.DuckDBPyConnection, alerts: Iterable[Alert],
                   recipients: Recipients, *, now: datetime | None = None) -> dict[str, list[str]]:
    """Add alerts to ``ops.alerts_pending`` unless their key is already pending or sent.
    Returns the keys ``recorded``, ``known`` (already pending or sent) and ``unaddressed``
    (no recipients for their kind, not recorded)."""
    ensure_alert_tables(con)
    now = now or utcnow()
    out = {"recorded": [], "known": [], "unaddressed": []}
    alerts = list(alerts)
    keys = [a.key for a in alerts]
    with transaction(con):
        # one query for every key: a shop's first run can raise thousands
        known = {k for (k,) in con.execute(
            "SELECT alert_key FROM ops.alerts_pending WHERE alert_key IN "
            "(SELECT unnest(CAST($k AS VARCHAR[]))) UNION SELECT alert_key FROM ops.alerts_sent "
            "WHERE alert_key IN (SELECT unnest(CAST($k AS VARCHAR[])))",
            {"k": keys}).fetchall()}
        rows = []
        for alert in alerts:
            if alert.key in known:
                out["known"].append(alert.key)
                continue
            to = recipients.for_alert(alert.kind)
            if not to:
                out["unaddressed"].append(alert.key)
                continue
            rows.append((alert.key, alert.kind, now, ", ".join(to), alert.title, alert.payload()))
            known.add(alert.key)
            out["recorded"].append(alert.key)
        if rows:
            frame = pd.DataFrame(rows, columns=["alert_key", "kind", "created_at", "recipients",
                                               "subject", "payload"])
            with registered(con, _new_alerts=frame):
                con.execute("INSERT INTO ops.alerts_pending SELECT alert_key, kind, "
                            "CAST(created_at AS TIMESTAMP), recipients, subject, payload "
                            "FROM _new_alerts")
    return out


@dataclass(frozen=True)
class PendingAlert:
    key: str
    kind: str
    created_at: datetime
    recipients: tuple[str, ...]
    subject: str
    payload: dict[str, Any]

    @property
    def severity(self) -> str:
        return str(self.payload.get("severity") or "none")

    @property
    def value(self) -> Decimal | None:
        raw = self.payload.get("value")
        try:
            return None if raw is None else Decimal(str(raw))
        except ArithmeticError:
            return None


def pending_alerts(con: duckdb.DuckDBPyConnection) -> list[PendingAlert]:
    ensure_alert_tables(con)
    rows = con.execute("SELECT alert_key, kind, created_at, recipients, subject, payload "
                       "FROM ops.alerts_pending ORDER BY created_at, alert_key").fetchall()
    out = []
    for key, kind, created, to, subject, payload in rows:
        try:
            data = json.loads(payload or "{}")
        except ValueError:
            data = {}
        addresses = tuple(formataddr(p) if p[0] else p[1] for p in getaddresses([to or ""]) if p[1])
        out.append(PendingAlert(key, kind, created, addresses, subject or key, data))
    return out


# -- the digest ------------------------------------------------------------------------------
KIND_LABELS = {"anomaly": "sales anomaly", "stock": "stock"}
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# First Strong Isolate / Pop Directional Isolate: the text part's <bdi>
_FSI, _PDI = "\u2068", "\u2069"


def _severity_tally(alerts: Iterable[PendingAlert]) -> OrderedDict[str, int]:
    """How many alerts of each severity, most severe first."""
    counts: OrderedDict[str, int] = OrderedDict()
    for a in sorted(alerts, key=lambda a: severity_rank(a.severity)):
        counts[a.severity] = counts.get(a.severity, 0) + 1
    return counts


def _severity_counts(alerts: Iterable[PendingAlert]) -> str:
    return ", ".join(f"{n:,} {sev}" for sev, n in _severity_tally(alerts).items())


def rank_pending(alerts: Iterable[PendingAlert]) -> list[PendingAlert]:
    return sorted(alerts, key=lambda a: alert_rank(a.value, a.severity, a.kind, a.key))


@dataclass(frozen=True)
class Stakes:
    at_risk: Decimal  # stock revenue at risk plus sales below expected
    above: Decimal  # sales above expected

    @classmethod
    def of(cls, alerts: Iterable[PendingAlert]) -> "Stakes":
        risk, above = Decimal(0), Decimal(0)
        # a day's sales gap, per direction: [the shop's (TOTAL), the sum of its products'];
        # the products' sales are part of the shop's, so the larger counts, not the sum
        days: dict[tuple[str, bool], list[Decimal]] = {}
        for a in alerts:
            v = a.value or Decimal(0)
            if a.kind == "anomaly" and a.payload.get("anomaly_kind") != "stock_drop":
                gap = days.setdefault((str(a.payload.get("ds")), v > 0), [Decimal(0), Decimal(0)])
                gap[0 if a.payload.get("series_id") == "TOTAL" else 1] += abs(v)
            elif a.kind == "anomaly" and v > 0:
                above += v
            else:
                risk += abs(v)
        for (_, up), gap in days.items():
            if up:
                above += max(gap)
            else:
                risk += max(gap)
        return cls(risk, above)


def _card(a: PendingAlert, rank: int, currency: str) -> dict[str, Any]:
    p = a.payload
    value = a.value
    if value is None:
        amount = "n/a"
    elif a.kind == "anomaly":
        amount = ("+" if value > 0 else "-" if value < 0 else "") + fmt_value(abs(value), "money", currency)
    else:
        amount = fmt_value(value, "money", currency)
    name = p.get("name") or p.get("product_name")
    if a.kind == "stock" or (a.kind == "anomaly" and p.get("series_id") != "TOTAL"):
        ref = p.get("sku") or p.get("series_id")
    else:
        ref = None
    what = "Total sales" if a.kind == "anomaly" and p.get("series_id") == "TOTAL" else None
    facts = []
    if a.kind == "stock":
        margin = p.get("margin_at_risk")
        if margin is not None and value:
            facts.append(f"gross margin at risk {fmt_value(Decimal(margin), 'money', currency)}")
        facts.append(f"since {p.get('since')}")
        if p.get("basis") and value:
            facts.append(f"basis: {p['basis']}")
    else:
        facts.append(str(p.get("since") or p.get("ds") or ""))
    if p.get("share_pct"):
        facts.append(f"{float(p['share_pct']):.1f}% of revenue (90 days)"
                     + (", a best seller" if p.get("key_product") else ""))
    return {
        "rank": rank, "kind": a.kind, "kind_label": KIND_LABELS.get(a.kind, a.kind),
        "severity": a.severity, "tone": ("critical" if a.severity == "critical" else
                                         "warning" if a.severity == "high" else ""),
        "amount": amount, "value_note": p.get("value_note") or "",
        "name": name, "ref": ref, "what": what,
        "name_text": f"{_FSI}{name}{_PDI} ({ref})" if name else (what or str(ref or a.key)),
        "statement": p.get("statement") or a.subject,
        "explanation": p.get("explanation"),
        "facts": [f for f in facts if f],
    }


def card_groups(ordered: Sequence[PendingAlert]) -> list[list[PendingAlert]]:
    """The digest's cards, in rank order: one alert each, except that a product's stock-out
    seen twice -- its sales stopped (an anomaly) and its stock is at 0 (a stock alert) -- is
    one card, led by the larger money."""
    def sku(a: PendingAlert):
        return a.payload.get("sku") if a.kind == "stock" else a.payload.get("series_id")

    def is_out(a: PendingAlert) -> bool:
        return a.kind == "stock" and a.payload.get("status") == "OUT_OF_STOCK"

    def is_stockout(a: PendingAlert) -> bool:
        return a.kind == "anomaly" and a.payload.get("anomaly_kind") == "stockout"

    outs = {sku(a): a for a in ordered if is_out(a)}
    stockouts = {sku(a): a for a in ordered if is_stockout(a)}
    used: set[str] = set()
    groups = []
    for a in ordered:
        if a.key in used:
            continue
        partner = outs.get(sku(a)) if is_stockout(a) else stockouts.get(sku(a)) if is_out(a) else None
        group = [a] + ([partner] if partner is not None and partner.key not in used else [])
        used.update(g.key for g in group)
        groups.append(group)
    return groups


def _group_card(group: Sequence[PendingAlert], rank: int, currency: str) -> dict[str, Any]:
    card = _card(group[0], rank, currency)
    for other in group[1:]:
        extra = _card(other, rank, currency)
        card["also"] = f"{extra['amount']} {extra['value_note']}".strip()
        card["statement"] = f"{card['statement']} {extra['statement']}"
        # one date per card: the leading alert's
        card["facts"] = list(dict.fromkeys(card["facts"] + [
            f for f in extra["facts"] if not f.startswith(("since ", "on "))]))
        if severity_rank(other.severity) < severity_rank(card["severity"]):
            card["severity"], card["tone"] = extra["severity"], extra["tone"]
    card.setdefault("also", None)
    return card


def alerts_workbook(alerts: Sequence[PendingAlert], currency: str) -> bytes:
    """Every alert of a digest, ranked: kind, severity, what, value, since, details."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Alerts"
    head = ["rank", "kind", "severity", "what", f"value ({currency})" if currency else "value",
            "value note", "since", "details"]
    ws.append(head)
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for i, a in enumerate(rank_pending(alerts), start=1):
        p = a.payload
        details = [p.get("statement") or ""]
        if p.get("explanation"):
            details.append(str(p["explanation"]))
        if p.get("basis"):
            details.append(f"Basis: {p['basis']}.")
        if p.get("margin_at_risk") is not None:
            details.append(f"Gross margin at risk: {p['margin_at_risk']}.")
        row = i + 1
        ws.cell(row, 1, i)
        for col, text in ((2, a.kind), (3, a.severity), (4, str(p.get("label") or a.key)),
                          (6, p.get("value_note") or ""),
                          (7, str((p.get("ds") if a.kind == "anomaly" else p.get("since")) or "")),
                          (8, " ".join(d for d in details if d))):
            set_text(ws.cell(row, col), str(text))
        value = ws.cell(row, 5, None if a.value is None else float(a.value))
        value.number_format = "#,##0.00"
    for col, width in zip("ABCDEFGH", (6, 9, 9, 40, 14, 34, 24, 90)):
        ws.column_dimensions[col].width = width
    ws.freeze_panes = "A2"
    ws.auto_filter.ref = f"A1:H{len(alerts) + 1}"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def digest_message(alerts: Sequence[PendingAlert], *, sender: str, recipients: Sequence[str],
                   shop_name: str, message_id: str | None = None, currency: str = "",
                   top_n: int = DEFAULT_TOP_N, summary: bool = False, as_of: date | None = None,
                   attachments: Sequence[Attachment] = (), unsubscribe: str = "") -> EmailMessage:
    """One e-mail about ``alerts``: a summary line, the top ``top_n`` by money as cards, "and M
    more" with every alert in an attached workbook. ``summary``: the current state (first run,
    backfill, many new alerts at once) instead of the new alerts."""
    ordered = rank_pending(alerts)
    n = len(ordered)
    groups = card_groups(ordered)[:top_n]
    top = [a for g in groups for a in g]
    more = n - len(top)
    stakes = Stakes.of(ordered)
    counts = _severity_counts(ordered)
    by_kind = [(kind, [a for a in ordered if a.kind == kind]) for kind in ("stock", "anomaly")]
    plural = "s" if n != 1 else ""
    at_risk = fmt_value(stakes.at_risk, "money", currency)
    what = " and ".join({"anomaly": "sales anomalies", "stock": "stock"}.get(k, k)
                        for k in sorted({a.kind for a in ordered}, key=lambda k: k != "stock"))
    if summary:
        subject = (f"[SalesFlow] {shop_name}: current state, {n:,} open alert{plural}, {at_risk} at "
                   f"stake ({counts}) - {what}")
        title = f"{n:,} open alert{plural}: the current state"
    else:
        subject = f"[SalesFlow] {shop_name}: {n:,} new alert{plural}, {at_risk} at stake ({counts}) - {what}"
        title = f"{n:,} new alert{plural}"
    day = f" on {as_of:%a %d %b %Y}" if as_of else ""
    lead = (f"{at_risk} at stake{day}"
            + (f", {fmt_value(stakes.above, 'money', currency)} of sales above expected"
               if stakes.above else "") + f": {counts}.")
    files = list(attachments)
    full_list = None
    if summary or more > 0:
        stamp = as_of.isoformat() if as_of else "open"
        full_list = f"alerts-{stamp}.xlsx"
        files.insert(0, Attachment(full_list, alerts_workbook(ordered, currency), XLSX_MIME))
    points = [{"label": f"{a.payload.get('series_id', a.key)} {a.payload.get('ds', '')}",
               "observed": a.payload.get("observed"), "expected": a.payload.get("expected"),
               "lower": a.payload.get("lower"), "upper": a.payload.get("upper"),
               "severity": a.severity} for a in top if a.kind == "anomaly"
              # a band says something about a day; a stock-out sits at 0% whatever it cost
              and a.payload.get("anomaly_kind") not in (*MULTI_DAY_KINDS, "stock_drop")]
    chart = anomaly_chart_png(points) if points else None
    context = {
        "title": title, "subtitle": shop_name, "shop_name": shop_name, "summary": summary,
        "preheader": lead, "lead": lead, "n": n, "more": more, "top_n": len(groups),
        "cards": [_group_card(g, i, currency) for i, g in enumerate(groups, start=1)],
        "by_kind": [{"kind": KIND_LABELS.get(k, k), "counts": _severity_counts(of_kind),
                     "n": len(of_kind)} for k, of_kind in by_kind if of_kind],
        "full_list": full_list, "other_files": [f.filename for f in files if f.filename != full_list],
        "chart": bool(chart), "unsubscribe": unsubscribe,
    }
    rendered = render("digest", **context)
    return build_message(sender=sender, to=recipients, subject=subject, text=rendered.text,
                         html=rendered.html, inline_images={"anomalies": chart} if chart else None,
                         attachments=files, message_id=message_id,
                         headers={"X-SalesFlow-Alerts": str(n),
                                  "X-SalesFlow-Digest": "summary" if summary else "new"})


# -- delivery with the ledger ----------------------------------------------------------------
def _finish(con, message_id: str, keys: Sequence[str], recipients: str, subject: str,
            transport: str, now: datetime) -> None:
    keys = list(dict.fromkeys(keys))
    with transaction(con):
        con.execute("DELETE FROM ops.alerts_pending WHERE alert_key IN (SELECT unnest(CAST($k AS VARCHAR[])))",
                    {"k": keys})
        con.execute("INSERT INTO ops.alerts_sent SELECT k, $now, $to, $subject "
                    "FROM (SELECT unnest(CAST($k AS VARCHAR[])) AS k) n WHERE NOT EXISTS "
                    "(SELECT 1 FROM ops.alerts_sent s WHERE s.alert_key = n.k)",
                    {"k": keys, "now": now, "to": recipients, "subject": subject})
        con.execute("UPDATE ops.alert_deliveries SET status = 'sent', finished_at = ?, "
                    "transport = ?, message = NULL WHERE message_id = ?", [now, transport, message_id])


def deliver_tracked(con: duckdb.DuckDBPyConnection, mailer: Mailer, msg: EmailMessage,
                    keys: Sequence[str], *, now: datetime | None = None) -> Delivery:
    """Send ``msg`` for the ledger ``keys``: a ``sending`` delivery row first, then the
    message, then keys moved to ``ops.alerts_sent``. Raises MailDeliveryError when sending
    fails (the delivery row is ``failed``, or stays ``sending`` when the outcome is unknown)."""
    ensure_alert_tables(con)
    now = now or utcnow()
    message_id = str(msg["Message-ID"])
    subject = str(msg["Subject"])
    to = str(msg["To"])
    # stored complete, so that a resend of an unconfirmed message is the same bytes
    mailer.add_list_unsubscribe(msg)
    con.execute("INSERT INTO ops.alert_deliveries VALUES (?, ?, NULL, 'sending', ?, ?, ?, ?, ?, NULL)",
                [message_id, now, mailer.transport, to, subject, json.dumps(list(keys)), bytes(msg)])
    try:
        delivery = mailer.deliver(msg)
    except Exception as exc:
        if not getattr(exc, "maybe_delivered", False):
            con.execute("UPDATE ops.alert_deliveries SET status = 'failed', finished_at = ?, "
                        "error = ?, message = NULL WHERE message_id = ?",
                        [utcnow(), f"{type(exc).__name__}: {exc}", message_id])
        raise
    _finish(con, message_id, keys, to, subject, delivery.transport, utcnow())
    return delivery


def _recover(con, mailer: Mailer, unconfirmed: str, only_keys: Sequence[str] | None = None) -> list[Delivery]:
    """Finish deliveries an earlier run left in ``sending``: resend the stored message (same
    bytes, same Message-ID) or, with ``assume_sent``, record it as sent."""
    rows = con.execute("SELECT message_id, alert_keys, recipients, subject, message "
                       "FROM ops.alert_deliveries WHERE status = 'sending' ORDER BY created_at").fetchall()
    out = []
    for message_id, keys_json, to, subject, raw in rows:
        keys = json.loads(keys_json or "[]")
        if only_keys is not None and sorted(keys) != sorted(only_keys):
            continue
        if unconfirmed == "assume_sent":
            _finish(con, message_id, keys, to, subject, "assumed", utcnow())
            continue
        msg = stored_message(raw)
        try:
            delivery = mailer.deliver(msg)
        except MailDeliveryError as exc:
            raise AlertDeliveryError(
                f"resending the unconfirmed message {subject!r} failed: {exc}. Its "
                f"{len(keys)} ledger key(s) stay pending and the next run tries again with the "
                "same Message-ID.", maybe_delivered=exc.maybe_delivered) from None
        _finish(con, message_id, keys, to, subject, delivery.transport, utcnow())
        out.append(delivery)
    return out


@dataclass
class AlertRunResult:
    as_of: date | None
    found: int = 0
    recorded: list[str] = field(default_factory=list)
    already_known: list[str] = field(default_factory=list)
    unaddressed: list[str] = field(default_factory=list)
    sent_keys: list[str] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    pending_left: int = 0
    summaries: int = 0  # digests sent as a current-state summary
    held: int = 0  # info alerts left pending for the next digest

    def metadata(self) -> dict[str, Any]:
        return {
            "alerts_found": self.found, "alerts_recorded": len(self.recorded),
            "alerts_already_known": len(self.already_known),
            "alerts_without_recipients": len(self.unaddressed),
            "alerts_sent": len(self.sent_keys), "messages_sent": len(self.deliveries),
            "alerts_pending": self.pending_left, "summary_digests": self.summaries,
            "info_alerts_held": self.held,
            "transport": ", ".join(sorted({d.transport for d in self.deliveries})) or "none",
        }


def alerts_ever_sent(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether this warehouse ever delivered an anomaly or stock alert."""
    return con.execute("SELECT count(*) FROM ops.alerts_sent WHERE alert_key LIKE 'anomaly:%' "
                       "OR alert_key LIKE 'stock:%'").fetchone()[0] > 0


def _reorder_attachment(con, as_of: date | None, currency: str, shop_name: str) -> Attachment | None:
    if as_of is None:
        return None
    found = reorder_attachment(con, as_of, currency, shop_name=shop_name)
    if not found:
        return None
    filename, data = found
    return Attachment(filename, data, XLSX_MIME)


def send_pending(con: duckdb.DuckDBPyConnection, mailer: Mailer, *, shop_name: str,
                 now: datetime | None = None, unconfirmed: str = "resend",
                 result: AlertRunResult | None = None, as_of: date | None = None,
                 currency: str | None = None, top_n: int | None = None) -> AlertRunResult:
    """Deliver every pending alert: one digest per recipient list, ranked by money. The first
    digest ever, or one of more than ``SUMMARY_FACTOR`` x ``top_n`` alerts, is a current-state
    summary. Raises AlertDeliveryError (alerts left pending) when a digest cannot be delivered."""
    if unconfirmed not in ("resend", "assume_sent"):
        raise ValueError("unconfirmed must be 'resend' or 'assume_sent'")
    ensure_alert_tables(con)
    result = result or AlertRunResult(as_of=None)
    as_of = as_of or result.as_of
    currency = ShopSettings.from_env().currency if currency is None else currency
    top_n = digest_top_n() if top_n is None else top_n
    for d in _recover(con, mailer, unconfirmed):
        result.deliveries.append(d)
    groups: OrderedDict[tuple[str, ...], list[PendingAlert]] = OrderedDict()
    for alert in rank_pending(pending_alerts(con)):
        groups.setdefault(alert.recipients, []).append(alert)
    first = not alerts_ever_sent(con)
    reorder = _reorder_attachment(con, as_of, currency, shop_name) if groups else None
    for recipients, alerts in groups.items():
        summary = first or len(alerts) > SUMMARY_FACTOR * top_n
        if not summary and all(a.severity == "info" for a in alerts):
            # nothing at stake is no reason for an e-mail: they wait for the next digest
            result.held += len(alerts)
            continue
        files = [reorder] if reorder is not None and any(a.kind == "stock" for a in alerts) else []
        msg = digest_message(alerts, sender=mailer.sender, recipients=recipients,
                             shop_name=shop_name,
                             message_id=make_msgid(domain=sender_domain(mailer.sender)),
                             currency=currency, top_n=top_n, summary=summary, as_of=as_of,
                             attachments=files, unsubscribe=mailer.unsubscribe_address)
        keys = [a.key for a in alerts]
        try:
            delivery = deliver_tracked(con, mailer, msg, keys, now=now)
        except MailDeliveryError as exc:
            left = con.execute("SELECT count(*) FROM ops.alerts_pending").fetchone()[0]
            outcome = ("the server may have accepted it; the next run resends the same message"
                       if exc.maybe_delivered else "nothing was delivered")
            raise AlertDeliveryError(
                f"alert digest not delivered ({outcome}): {exc}. {left} alert(s) stay pending "
                "in ops.alerts_pending and go out with the next run.",
                maybe_delivered=exc.maybe_delivered) from None
        result.deliveries.append(delivery)
        result.sent_keys += keys
        if summary:
            result.summaries += 1
    result.pending_left = con.execute("SELECT count(*) FROM ops.alerts_pending").fetchone()[0]
    return result



def run_alerts(
    con: duckdb.DuckDBPyConnection,
    as_of: date,
    mailer: Mailer,
    recipients: Recipients,
    *,
    shop_name: str,
    now: datetime | None = None,
    lookback_days: int = ANOMALY_LOOKBACK_DAYS,
    unconfirmed: str = "resend",
    currency: str | None = None,
    top_n: int | None = None,
    lead_time_days: int = DEFAULT_LEAD_TIME_DAYS,
) -> AlertRunResult:
    """Find the as-of day's alerts, record the new ones, deliver everything pending.
    ``currency`` defaults to ``SALESFLOW_CURRENCY``, ``top_n`` to ``SALESFLOW_DIGEST_TOP_N``."""
    currency = ShopSettings.from_env().currency if currency is None else currency
    top_n = digest_top_n() if top_n is None else top_n
    alerts = build_alerts(con, as_of, lookback_days=lookback_days, currency=currency,
                          lead_time_days=lead_time_days)
    recorded = record_pending(con, alerts, recipients, now=now)
    result = AlertRunResult(as_of=as_of, found=len(alerts), recorded=recorded["recorded"],
                            already_known=recorded["known"], unaddressed=recorded["unaddressed"])
    return send_pending(con, mailer, shop_name=shop_name, now=now, unconfirmed=unconfirmed,
                        result=result, as_of=as_of, currency=currency, top_n=top_n)


# -- reports ----------------------------------------------------------------------------------
def report_key(kind: str, as_of: date) -> str:
    return f"report:{kind}:{as_of.isoformat()}"


def send_report_once(con: duckdb.DuckDBPyConnection, mailer: Mailer, files, recipients: Sequence[str],
                     *, now: datetime | None = None, unconfirmed: str = "resend") -> Delivery | None:
    """E-mail a written report (``salesflow.reports.ReportFiles``) unless the ledger shows it
    was sent; None when it was, or when nobody is to receive it. A rerun of the partition does
    not send it again; a failed send raises MailDeliveryError and the rerun sends it."""
    if not recipients:
        return None
    return send_once(con, mailer, report_key(files.kind, files.as_of), lambda: report_message(
        files, sender=mailer.sender, recipients=recipients,
        message_id=make_msgid(domain=sender_domain(mailer.sender)),
        unsubscribe=mailer.unsubscribe_address), now=now, unconfirmed=unconfirmed)


def send_once(con: duckdb.DuckDBPyConnection, mailer: Mailer, key: str, build, *,
              now: datetime | None = None, unconfirmed: str = "resend") -> Delivery | None:
    """Send the message ``build()`` makes under the ledger key ``key`` unless the ledger shows
    it was sent (None then); an unconfirmed earlier delivery of the key is recovered instead
    (``unconfirmed`` as in ``run_alerts``). A failed send raises MailDeliveryError."""
    ensure_alert_tables(con)

    def sent() -> bool:
        return con.execute("SELECT count(*) FROM ops.alerts_sent WHERE alert_key = ?",
                           [key]).fetchone()[0] > 0

    if sent():
        return None
    recovered = _recover(con, mailer, unconfirmed, only_keys=[key])
    if recovered:
        return recovered[0]
    if unconfirmed == "assume_sent" and sent():
        return None
    return deliver_tracked(con, mailer, build(), [key], now=now)
