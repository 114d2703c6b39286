"""The reorder list: ``marts.reorder_suggestions``, what to order per sku and what it costs.

One row per catalogue sku worth acting on, for an as-of day with stock figures
(``marts.stock_status``; past days without a stock snapshot have none and get no rows):

* **Demand over the lead time** is the sum of the forecast's daily means (``yhat``) over the
  ``lead_time_days`` days after the as-of day, from ``ml.sales_forecast`` of the same as-of
  day. ``basis`` says where the means come from: ``forecast`` (a model chosen by the
  backtest), ``fallback`` (the recent-rate or category-profile forecast of
  ``salesflow.forecast_fallback``, named so by ``ml.forecast_coverage``), or ``recent average``
  when the sku has no forecast rows for that day at all (the forecast did not run, or the
  coverage gave it none): then every day's mean is its units of the last 28 days / 28. A lead
  time longer than the forecast's horizon repeats the horizon's last week (forecasts carry a
  weekday shape), and ``note`` says so.
* **Safety stock** covers the forecast's uncertainty over the lead time at a 95% cycle service
  level: ``safety = z * sqrt(sum of the lead-time days' sigma²)`` with ``z = 1.645``, i.e.
  ``z * sigma * sqrt(L)`` for a flat forecast. A day's sigma is read from the upper half of its
  95% band, ``(yhat_hi_95 - yhat) / 1.96``: the upper side is what runs a shelf empty, and the
  day counts are right-skewed, so the lower side would understate it. Days are taken as
  independent. For the recent-average basis (no band) a day's units are taken as Poisson:
  sigma² = the mean. Sku bands are whole units, which rounds the spread of slow sellers up: a
  product expected to sell almost nothing with a band up to 2 units a day gets a safety of
  about 4 units over a week. A series with rare large purchases has a wide band, and its
  safety can exceed its demand (the demo shop's iced tea: 315 units forecast over a week, a
  safety of 450).
* **Suggested quantity** = ``max(0, ceil(target_units - stock))`` whole units, where
  ``target_units = demand_units + safety_units`` (each rounded to 2 decimals first, so the row
  adds up as printed).
* **Order cost** = suggested quantity × unit cost where the cost is *known* (the rule of
  ``salesflow.marts``: ``raw.inventory`` has the sku with cost > 0 or a category other than
  ``Uncategorized``); NULL where it is not.
* **Projected stock-out date**: the first day after the as-of day on which the cumulative
  forecast mean exceeds the stock; NULL when that does not happen within the forecast's horizon
  (for the recent-average basis, the horizon of that day's forecast, 28 days when there is none).
* **Lead time** per sku: the product's own (imported with a ``lead_times`` file into
  ``raw.lead_times``) over its category's (``SALESFLOW_LEAD_TIME_DAYS_BY_CATEGORY``, e.g.
  ``Bakery=2,Garden tools=21``, category names matched without regard to case) over the global
  default (the stock status mart's ``lead_time_days``). ``lead_time_source`` says which.

Only rows worth acting on are kept: a positive suggested quantity, or a projected stock-out
within the lead time (which in practice implies the former).

Plain Python and SQL: no Dagster.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Mapping, Sequence

import duckdb
import pandas as pd

from salesflow.imports.kinds import MAX_LEAD_TIME_DAYS
from salesflow.marts import CATEGORY_OF, KNOWN_COST
from salesflow.warehouse import has_table, registered, transaction

CATEGORY_ENV = "SALESFLOW_LEAD_TIME_DAYS_BY_CATEGORY"
SERVICE_Z = 1.645  # one-sided 95% of the normal
BAND_Z_95 = 1.96  # the 95% band's half-width in sigmas
RECENT_DAYS = 28
DEFAULT_HORIZON_DAYS = 28
UNCATEGORIZED = "Uncategorized"

FORECAST, FALLBACK, RECENT_AVERAGE = "forecast", "fallback", "recent average"
PRODUCT, CATEGORY, DEFAULT = "product", "category", "default"
# the model names salesflow.forecast_fallback writes (its RECENT_RATE, CATEGORY_PROFILE), read
# when a sku has no ml.forecast_coverage row to say it is a fallback
FALLBACK_METHODS = ("RecentRate", "CategoryProfile")

REORDER_DDL = {
    "marts.reorder_suggestions": """
        CREATE TABLE IF NOT EXISTS marts.reorder_suggestions (
            as_of DATE, sku VARCHAR, product_name VARCHAR, category VARCHAR,
            stock_quantity INTEGER, lead_time_days INTEGER, lead_time_source VARCHAR,
            basis VARCHAR, demand_units DECIMAL(18,2), safety_units DECIMAL(18,2),
            target_units DECIMAL(18,2), suggested_qty BIGINT, unit_cost DECIMAL(18,2),
            order_cost DECIMAL(38,2), stockout_date DATE, note VARCHAR)""",
}
COLUMNS = ["as_of", "sku", "product_name", "category", "stock_quantity", "lead_time_days",
           "lead_time_source", "basis", "demand_units", "safety_units", "target_units",
           "suggested_qty", "unit_cost", "order_cost", "stockout_date", "note"]


def ensure_reorder(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS marts")
    for ddl in REORDER_DDL.values():
        con.execute(ddl)


# -- lead times ----------------------------------------------------------------------------
def parse_category_lead_times(text: str, *, name: str = CATEGORY_ENV) -> dict[str, int]:
    """``"Bakery=2, Garden tools=21"`` → ``{"bakery": 2, "garden tools": 21}`` (keys folded to
    lower case). Blank items are skipped; any other item that is not ``Category=days`` with a
    whole number of days from 0 to 365, or names a category twice, is refused by name."""
    out: dict[str, int] = {}
    for raw in (text or "").split(","):
        item = raw.strip()
        if not item:
            continue
        category, sep, days_text = item.partition("=")
        category, days_text = category.strip(), days_text.strip()
        if not sep or not category or not days_text:
            raise ValueError(f"{name}: {item!r} is not Category=days (e.g. Bakery=2,Garden tools=21)")
        # ASCII digits only: str.isdigit() also takes superscripts, which int() refuses
        if not (days_text.isascii() and days_text.isdigit()):
            raise ValueError(f"{name}: {item!r}: the lead time must be a whole number of days, "
                             f"got {days_text!r}")
        days = int(days_text)
        if days > MAX_LEAD_TIME_DAYS:
            raise ValueError(f"{name}: {item!r}: at most {MAX_LEAD_TIME_DAYS} days")
        key = category.casefold()
        if key in out:
            raise ValueError(f"{name}: {item!r}: the category {category!r} is named twice")
        out[key] = days
    return out


def category_lead_times_from_env(environ: Mapping[str, str] | None = None) -> dict[str, int]:
    return parse_category_lead_times((os.environ if environ is None else environ).get(CATEGORY_ENV) or "")


def lead_time_for(sku: str, category: str | None, *, product: Mapping[str, int],
                  by_category: Mapping[str, int], default: int) -> tuple[int, str]:
    """The sku's lead time in days and its source: product > category > default."""
    if sku in product:
        return int(product[sku]), PRODUCT
    if category is not None and category.strip().casefold() in by_category:
        return int(by_category[category.strip().casefold()]), CATEGORY
    return int(default), DEFAULT


def product_lead_times(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Lead times imported per sku (``raw.lead_times``), empty when none was ever imported."""
    if not has_table(con, "raw", "lead_times"):
        return {}
    return {sku: int(days) for sku, days in con.execute(
        "SELECT sku, lead_time_days FROM raw.lead_times WHERE lead_time_days IS NOT NULL").fetchall()}


# -- one sku -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Suggestion:
    demand_units: Decimal
    safety_units: Decimal
    target_units: Decimal
    suggested_qty: int
    stockout_date: date | None
    note: str | None = None


_CENT = Decimal("0.01")


def _units(value: float) -> Decimal:
    return Decimal(repr(float(value))).quantize(_CENT, rounding=ROUND_HALF_UP)


def _over(values: Sequence[float], days: int, week: int = 7) -> list[float]:
    """``days`` daily values from ``values``; past its end, its last week repeated."""
    values = list(values)
    if days <= len(values) or not values:
        return values[:days]
    tail = values[-min(week, len(values)):]
    return values + [tail[i % len(tail)] for i in range(days - len(values))]


def suggest(stock: int, lead_time_days: int, means: Sequence[float], sigmas: Sequence[float],
            as_of: date, *, z: float = SERVICE_Z) -> Suggestion:
    """What to order for one sku, from its daily forecast means and sigmas (day 1 = as_of + 1;
    their length is the horizon). See the module docstring for the rules."""
    if lead_time_days < 0:
        raise ValueError(f"lead time must be >= 0 days, got {lead_time_days}")
    means = [max(0.0, float(m)) for m in means]
    sigmas = [max(0.0, float(s)) for s in sigmas]
    horizon = len(means)
    note = None
    if lead_time_days > horizon:
        note = (f"the lead time of {lead_time_days} days is longer than the {horizon}-day forecast: "
                "its last week is repeated" if horizon else "no forecast days")
    lead_means = _over(means, lead_time_days)
    lead_sigmas = _over(sigmas, lead_time_days)
    demand = _units(sum(lead_means))
    safety = _units(z * math.sqrt(sum(s * s for s in lead_sigmas)))
    target = demand + safety
    qty = max(0, math.ceil(target - Decimal(int(stock))))
    stockout = None
    cumulative = 0.0
    for i, m in enumerate(means):
        cumulative += m
        # a tolerance so that a float sum equal to the stock does not count as exceeding it
        if cumulative > stock + 1e-9:
            stockout = as_of + timedelta(days=i + 1)
            break
    return Suggestion(demand, safety, target, int(qty), stockout, note)


def worth_acting_on(s: Suggestion, as_of: date, lead_time_days: int) -> bool:
    """A positive suggestion, or a stock-out projected within the lead time."""
    return s.suggested_qty > 0 or (
        s.stockout_date is not None and s.stockout_date <= as_of + timedelta(days=lead_time_days))


# -- the mart ------------------------------------------------------------------------------
_ITEMS_SQL = f"""
    WITH {KNOWN_COST}, {CATEGORY_OF},
    sold AS (
        SELECT sku, sum(units) AS units FROM marts.product_daily_sales
        WHERE sale_date BETWEEN $recent_start AND $as_of GROUP BY sku)
    SELECT s.sku, s.product_name, s.stock_quantity,
           coalesce(c.category, '{UNCATEGORIZED}') AS category,
           k.cost AS unit_cost, coalesce(u.units, 0) AS recent_units
    FROM marts.stock_status s
    LEFT JOIN category_of c ON c.sku = s.sku
    LEFT JOIN known_cost k ON k.sku = s.sku
    LEFT JOIN sold u ON u.sku = s.sku
    WHERE s.as_of = $as_of
    ORDER BY s.sku"""


@dataclass
class BuildResult:
    rows: int
    skus: int
    by_basis: dict[str, int] = field(default_factory=dict)
    by_lead_time_source: dict[str, int] = field(default_factory=dict)
    note: str | None = None


def compute(con: duckdb.DuckDBPyConnection, as_of: date, *, default_lead_time_days: int,
            category_lead_times: Mapping[str, int] | None = None, z: float = SERVICE_Z
            ) -> tuple[pd.DataFrame, int]:
    """The rows of ``marts.reorder_suggestions`` for ``as_of`` (not written) and the number of
    skus considered."""
    if default_lead_time_days < 0:
        raise ValueError(f"the default lead time must be >= 0 days, got {default_lead_time_days}")
    by_category = {k.casefold(): int(v) for k, v in (category_lead_times or {}).items()}
    items = con.execute(_ITEMS_SQL, {
        "as_of": as_of, "recent_start": as_of - timedelta(days=RECENT_DAYS - 1)}).fetchall()
    product = product_lead_times(con)
    # per sku: its daily means and 95% upper bands in day order
    fc = con.execute(
        """SELECT series_id, list(coalesce(yhat, 0) ORDER BY ds), list(yhat_hi_95 ORDER BY ds),
                  arg_min(model, ds)
           FROM ml.sales_forecast WHERE as_of = ? AND ds > ? GROUP BY series_id""",
        [as_of, as_of]).fetchall() if has_table(con, "ml", "sales_forecast") else []
    coverage = dict(con.execute(
        "SELECT series_id, status FROM ml.forecast_coverage WHERE as_of = ?", [as_of]).fetchall()) \
        if has_table(con, "ml", "forecast_coverage") else {}
    paths: dict[str, tuple[list[float], list[float], str]] = {}
    for sku, yhat, hi, model in fc:
        sig = [0.0 if h is None or h != h else max(0.0, h - m) / BAND_Z_95 for h, m in zip(hi, yhat)]
        paths[str(sku)] = (yhat, sig, str(model))
    horizon = max((len(p[0]) for p in paths.values()), default=DEFAULT_HORIZON_DAYS)
    out = []
    for sku, name, stock, category, unit_cost, recent_units in items:
        lead, source = lead_time_for(sku, category, product=product, by_category=by_category,
                                     default=default_lead_time_days)
        stock = int(stock or 0)
        if sku in paths:
            means, sigmas, model = paths[sku]
            status = coverage.get(sku)
            basis = FALLBACK if status == "fallback" or (status is None and model in FALLBACK_METHODS) \
                else FORECAST
        else:
            mean = float(recent_units) / RECENT_DAYS
            means, sigmas = [mean] * horizon, [math.sqrt(mean)] * horizon
            basis = RECENT_AVERAGE
        s = suggest(stock, lead, means, sigmas, as_of, z=z)
        if not worth_acting_on(s, as_of, lead):
            continue
        cost = None if unit_cost is None else Decimal(unit_cost)
        out.append((as_of, sku, name, category, stock, lead, source, basis, s.demand_units,
                    s.safety_units, s.target_units, s.suggested_qty, cost,
                    None if cost is None else (cost * s.suggested_qty).quantize(_CENT),
                    s.stockout_date, s.note))
    return pd.DataFrame(out, columns=COLUMNS), len(items)


def build_reorder(con: duckdb.DuckDBPyConnection, as_of: date, *, default_lead_time_days: int,
                  category_lead_times: Mapping[str, int] | None = None,
                  z: float = SERVICE_Z) -> BuildResult:
    """Replace the ``as_of`` rows of ``marts.reorder_suggestions``, in one transaction."""
    ensure_reorder(con)
    frame, n_skus = compute(con, as_of, default_lead_time_days=default_lead_time_days,
                            category_lead_times=category_lead_times, z=z)
    text = frame.astype(object).where(frame.notna(), None)
    for col in ("demand_units", "safety_units", "target_units", "unit_cost", "order_cost"):
        text[col] = [None if v is None else str(v) for v in text[col]]
    with transaction(con):
        con.execute("DELETE FROM marts.reorder_suggestions WHERE as_of = ?", [as_of])
        if len(text):
            with registered(con, _reorder_rows=text):
                con.execute(
                    """INSERT INTO marts.reorder_suggestions
                       SELECT CAST(as_of AS DATE), sku, product_name, category,
                              CAST(stock_quantity AS INTEGER), CAST(lead_time_days AS INTEGER),
                              lead_time_source, basis, CAST(demand_units AS DECIMAL(18,2)),
                              CAST(safety_units AS DECIMAL(18,2)), CAST(target_units AS DECIMAL(18,2)),
                              CAST(suggested_qty AS BIGINT), CAST(unit_cost AS DECIMAL(18,2)),
                              CAST(order_cost AS DECIMAL(38,2)), CAST(stockout_date AS DATE),
                              CAST(note AS VARCHAR)
                       FROM _reorder_rows ORDER BY sku""")
    note = None if n_skus else f"no stock figures for {as_of} in marts.stock_status: nothing to suggest"
    return BuildResult(
        rows=len(frame), skus=n_skus,
        by_basis={k: int(v) for k, v in frame["basis"].value_counts().sort_index().items()},
        by_lead_time_source={k: int(v) for k, v in
                             frame["lead_time_source"].value_counts().sort_index().items()},
        note=note)


def load_rows(con: duckdb.DuckDBPyConnection, as_of: date) -> list[dict]:
    """The stored rows of ``as_of`` (money as Decimal), by category (Uncategorized last), then
    the soonest stock-out, the dearest order and the sku."""
    if not has_table(con, "marts", "reorder_suggestions"):
        return []
    cur = con.execute(
        f"""SELECT {', '.join(COLUMNS)} FROM marts.reorder_suggestions WHERE as_of = ?
            ORDER BY category = '{UNCATEGORIZED}', category, stockout_date NULLS LAST,
                     order_cost DESC NULLS LAST, sku""", [as_of])
    return [dict(zip(COLUMNS, row)) for row in cur.fetchall()]


def check_rows(con: duckdb.DuckDBPyConnection, as_of: date) -> list[dict]:
    """Rows of ``as_of`` that break the mart's rules, with the reason (at most 10): a sku
    listed twice, a negative figure, an order quantity that is not ``max(0, ceil(target -
    stock))`` or an order cost that is not quantity × unit cost."""
    if not has_table(con, "marts", "reorder_suggestions"):
        return []
    rows = con.execute(
        """SELECT sku, reason FROM (
               SELECT sku, 'listed ' || count(*) || ' times' AS reason
               FROM marts.reorder_suggestions WHERE as_of = $as_of GROUP BY sku HAVING count(*) > 1
               UNION ALL
               SELECT sku, CASE
                   WHEN least(demand_units, safety_units, suggested_qty, coalesce(unit_cost, 0),
                              coalesce(order_cost, 0)) < 0 THEN 'a negative figure'
                   WHEN suggested_qty <> greatest(0, ceil(target_units - stock_quantity))
                       THEN 'order qty is not target - stock rounded up'
                   WHEN (unit_cost IS NULL) <> (order_cost IS NULL)
                        OR order_cost <> suggested_qty * unit_cost
                       THEN 'order cost is not order qty x unit cost' END
               FROM marts.reorder_suggestions WHERE as_of = $as_of)
           WHERE reason IS NOT NULL ORDER BY sku, reason LIMIT 10""", {"as_of": as_of}).fetchall()
    return [{"sku": sku, "reason": reason} for sku, reason in rows]
