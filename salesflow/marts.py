"""Sales and stock marts: daily sales, KPIs per window, top products, stock status and turnover.

Daily marts (``build_daily``) are rebuilt for a date range from ``raw.sales`` + ``raw.sale_items``; as-of marts (``build_as_of``) are rebuilt for one day from the daily marts (and
``raw.sales`` for customer figures, ``raw.products``/``raw.stock_snapshots`` for stock).

Rules shared by every mart:

* Revenue is the sum of sale-line subtotals. Money stays DECIMAL from the raw tables to the
  marts; every ratio is computed exactly in integers and rounded half-up (ties away from zero).
* A sku's unit cost is *known* when ``raw.inventory`` has it with ``cost > 0`` or a category
  other than ``'Uncategorized'``; the core records an unknown cost as cost 0 in
  ``'Uncategorized'``, and a sku missing from the inventory is unknown too. Cost and gross
  profit only cover lines with a known cost; ``revenue_with_cost`` is those lines' revenue, so
  ``gross_margin_pct`` = gross_profit / revenue_with_cost and ``cost_coverage_pct`` =
  revenue_with_cost / revenue. The core keeps no cost history: today's cost applies to every day.
* A customer is ``raw.sales.customer_id``; NULL or blank means an anonymous sale.

KPI windows end on ``as_of`` inclusive (see ``kpi_windows``): ``7d``, ``28d``, ``mtd``, ``ytd``
and ``all`` (first sale .. as_of). Growth compares with the window before: the same number of
days just before for 7d/28d, and for mtd/ytd the same calendar span of the previous month/year
(1st .. same day of month, clipped to the previous month's length; Jan 1 .. same date, Feb 29
becoming Feb 28).

Stock status per catalogue product, first match wins: OUT_OF_STOCK (stock 0), LOW (stock <
threshold, strictly, as the core's ``/low-stock``), DEAD (no sale in the 90 days up to as_of),
OVERSTOCK (days of cover > ``overstock_days``), OK. Severity follows the stock/threshold ratio
for LOW (<= 0.25 high, <= 0.5 medium, else low), raised to high when the cover is shorter than
the lead time; OUT_OF_STOCK is critical; any other status is none, or medium when the cover is
shorter than the lead time. Cover comparisons use the exact cover (stock * 28 / units of 28
days), not its rounded display value.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta

import duckdb

from salesflow.warehouse import transaction

WINDOWS = ("7d", "28d", "mtd", "ytd", "all")
NO_CUSTOMER_IDS_NOTE = "no customer ids in this window's sales"
NO_SALES_NOTE = "no sales in this window"
GROWTH_OUT_OF_RANGE_NOTE = "revenue_growth_pct beyond +/-9,999,999.99, left NULL"
MARGIN_OUT_OF_RANGE_NOTE = "gross_margin_pct beyond +/-9,999,999.99, left NULL"
DEAD_AFTER_DAYS = 90
# days from order to delivery when neither the product nor its category sets one
DEFAULT_LEAD_TIME_DAYS = 7
TURNOVER_DAYS = 90
AVG_UNITS_DAYS = 28

MARTS_DDL: dict[str, str] = {
    "marts.daily_sales": """
        CREATE TABLE IF NOT EXISTS marts.daily_sales (
            sale_date DATE, orders INTEGER, units BIGINT, revenue DECIMAL(38,2),
            cost DECIMAL(38,2), gross_profit DECIMAL(38,2), revenue_with_cost DECIMAL(38,2),
            identified_orders INTEGER, provisional BOOLEAN DEFAULT false)""",
    "marts.product_daily_sales": """
        CREATE TABLE IF NOT EXISTS marts.product_daily_sales (
            sale_date DATE, sku VARCHAR, orders INTEGER, units BIGINT, revenue DECIMAL(38,2),
            provisional BOOLEAN DEFAULT false)""",
    "marts.kpis": """
        CREATE TABLE IF NOT EXISTS marts.kpis (
            as_of DATE, "window" VARCHAR, revenue DECIMAL(38,2), orders INTEGER, units BIGINT,
            avg_order_value DECIMAL(38,2), gross_margin_pct DECIMAL(9,2),
            revenue_growth_pct DECIMAL(9,2), repeat_customer_rate DECIMAL(9,2), peak_day DATE,
            peak_day_revenue DECIMAL(38,2), window_start DATE, window_end DATE,
            gross_profit DECIMAL(38,2), cost_coverage_pct DECIMAL(9,2), customers INTEGER,
            note VARCHAR)""",
    "marts.top_products": """
        CREATE TABLE IF NOT EXISTS marts.top_products (
            as_of DATE, "window" VARCHAR, rank INTEGER, sku VARCHAR, product_name VARCHAR,
            revenue DECIMAL(38,2), units BIGINT, revenue_share DECIMAL(9,2))""",
    "marts.stock_status": """
        CREATE TABLE IF NOT EXISTS marts.stock_status (
            as_of DATE, sku VARCHAR, product_name VARCHAR, stock_quantity INTEGER,
            low_stock_threshold INTEGER, avg_daily_units_28d DECIMAL(38,3),
            days_of_cover DECIMAL(12,1), status VARCHAR, severity VARCHAR, reorder_qty BIGINT,
            last_sale_date DATE)""",
    # Per customer id as stored in raw.sales, its first two sale days: over all history
    # (period 'all') and within each calendar year (period 'year'). Kept by build_daily so
    # the KPIs of the long windows need not scan every sale.
    "marts.customer_firsts": """
        CREATE TABLE IF NOT EXISTS marts.customer_firsts (
            period VARCHAR, period_start DATE, customer_id VARCHAR, first_date DATE,
            second_date DATE)""",
    "marts.stock_turnover": """
        CREATE TABLE IF NOT EXISTS marts.stock_turnover (
            as_of DATE, sku VARCHAR, window_days INTEGER, units_sold BIGINT,
            avg_stock DECIMAL(12,2), snapshot_days INTEGER, turnover DECIMAL(12,3))""",
}

# Columns whose type was widened so that no legal value of the core overflows them: units
# (sums of Java ints) are BIGINT, money summed over days DECIMAL(38,2). ``ensure_schema``
# alters older warehouses.
MONEY = "DECIMAL(38,2)"
MARTS_WIDENED: dict[str, dict[str, str]] = {
    "marts.daily_sales": {"units": "BIGINT", "revenue": MONEY, "cost": MONEY, "gross_profit": MONEY,
                          "revenue_with_cost": MONEY},
    "marts.product_daily_sales": {"units": "BIGINT", "revenue": MONEY},
    "marts.kpis": {"revenue": MONEY, "units": "BIGINT", "avg_order_value": MONEY,
                   "peak_day_revenue": MONEY, "gross_profit": MONEY},
    "marts.top_products": {"revenue": MONEY, "units": "BIGINT"},
    "marts.stock_status": {"avg_daily_units_28d": "DECIMAL(38,3)", "reorder_qty": "BIGINT"},
    "marts.stock_turnover": {"units_sold": "BIGINT"},
}


def ensure_marts(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS marts")
    for ddl in MARTS_DDL.values():
        con.execute(ddl)
    # warehouses created before the column existed
    con.execute("ALTER TABLE marts.daily_sales ADD COLUMN IF NOT EXISTS identified_orders INTEGER")
    for table in ("marts.daily_sales", "marts.product_daily_sales"):
        con.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS provisional BOOLEAN DEFAULT false")


# -- exact arithmetic in SQL ---------------------------------------------------------------
def _div(num: str, den: str, scale: int) -> str:
    """SQL for ``num / den`` rounded half-up (ties away from zero) to ``scale`` decimals.

    ``num`` and ``den`` are integer-valued SQL expressions; the division is done in HUGEINT, so
    it is exact. NULL when ``den`` is NULL or not positive.
    """
    n = f"(CAST(({num}) AS HUGEINT) * {10 ** scale})"
    d = f"CAST(({den}) AS HUGEINT)"
    q = f"(sign({n}) * ((2 * abs({n}) + {d}) // (2 * {d})))"
    unit = "1" if scale == 0 else "0." + "0" * (scale - 1) + "1"
    return f"(CASE WHEN {d} > 0 THEN CAST({q} AS DECIMAL(38,0)) * {unit} END)"


def _cents(expr: str) -> str:
    """A DECIMAL amount with two decimals as whole cents (HUGEINT)."""
    return f"CAST(({expr}) * 100 AS HUGEINT)"


# -- windows -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Window:
    name: str
    start: date
    end: date
    prev_start: date | None
    prev_end: date | None

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def _days_in_month(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


def kpi_windows(as_of: date, first_sale: date | None = None) -> list[Window]:
    """The five KPI windows ending on ``as_of`` with the windows they are compared with.

    ``all`` starts on ``first_sale`` (the first sale day up to as_of), or on as_of when there
    is none; it has no previous window.
    """
    day = timedelta(days=1)
    month_start = as_of.replace(day=1)
    prev_month = (month_start - day).replace(day=1)
    prev_month_end = prev_month.replace(
        day=min(as_of.day, _days_in_month(prev_month.year, prev_month.month)))
    year_start = date(as_of.year, 1, 1)
    prev_year = date(as_of.year - 1, 1, 1)
    prev_year_end = date(as_of.year - 1, as_of.month,
                         min(as_of.day, _days_in_month(as_of.year - 1, as_of.month)))
    all_start = first_sale if first_sale is not None and first_sale <= as_of else as_of
    return [
        Window("7d", as_of - 6 * day, as_of, as_of - 13 * day, as_of - 7 * day),
        Window("28d", as_of - 27 * day, as_of, as_of - 55 * day, as_of - 28 * day),
        Window("mtd", month_start, as_of, prev_month, prev_month_end),
        Window("ytd", year_start, as_of, prev_year, prev_year_end),
        Window("all", all_start, as_of, None, None),
    ]


def _load_windows(con: duckdb.DuckDBPyConnection, windows: list[Window]) -> None:
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _marts_windows (
               window_name VARCHAR, ord INTEGER, w_start DATE, w_end DATE, p_start DATE, p_end DATE)""")
    values = ", ".join(["(?, ?, ?, ?, ?, ?)"] * len(windows))
    params: list = []
    for i, w in enumerate(windows):
        params += [w.name, i, w.start, w.end, w.prev_start, w.prev_end]
    con.execute(f"INSERT INTO _marts_windows VALUES {values}", params)


# -- daily marts ---------------------------------------------------------------------------
# The inventory's unit cost per sku where it is known (one row per sku: the latest update);
# a CTE named known_cost, also read by the reorder list.
KNOWN_COST = """
    known_cost AS (
        SELECT sku, cost FROM (
            SELECT sku, cost, category FROM raw.inventory
            QUALIFY row_number() OVER (PARTITION BY sku
                                       ORDER BY updated_at DESC NULLS LAST, extracted_at DESC NULLS LAST) = 1)
        WHERE cost IS NOT NULL AND (cost > 0 OR coalesce(category, 'Uncategorized') <> 'Uncategorized'))"""

# The inventory's category per sku (its latest row, as for the cost), blank read as
# Uncategorized; a CTE named category_of, read by the reorder list and the report's explanation.
CATEGORY_OF = """
    category_of AS (
        SELECT sku, coalesce(nullif(trim(category), ''), 'Uncategorized') AS category
        FROM raw.inventory
        QUALIFY row_number() OVER (PARTITION BY sku
                                   ORDER BY updated_at DESC NULLS LAST, extracted_at DESC NULLS LAST) = 1)"""


# Orders per sku and day count distinct sales. A sale lists a sku on several lines only
# rarely, so the lines are counted and the repeats subtracted: within one sale two lines share
# a sku exactly when they share a product id (skus and ids are both unique in the core). One
# bit per product id (id mod 63) ORed over a sale's lines proves a sale free of repeats when
# it sets as many bits as the sale has lines; the remaining suspects (a repeat, two ids on the
# same bit, a line without a product id, 63 lines or more) are grouped by sku exactly.
# Per-sale grouping on the dense sale ids runs as a perfect hash aggregate.
_REPEATS_SQL = """
    CREATE OR REPLACE TEMP TABLE _marts_repeats AS
    WITH suspects AS (
        SELECT sale_id FROM (
            SELECT sale_id, count(*) AS k,
                   bit_or(CASE WHEN product_id IS NULL THEN -1 ELSE 1::BIGINT << (abs(product_id) % 63) END) AS m
            FROM {items}
            GROUP BY sale_id HAVING count(*) > 1)
        WHERE k >= 63 OR bit_count(m) <> k)
    SELECT s.sale_date, i.sku, sum(extra) AS extra
    FROM (SELECT sale_id, sku, count(*) - 1 AS extra
          FROM raw.sale_items WHERE sale_id IN (SELECT sale_id FROM suspects)
          GROUP BY sale_id, sku HAVING count(*) > 1) i
    JOIN raw.sales s ON s.sale_id = i.sale_id
    WHERE s.sale_date BETWEEN $start AND $end
    GROUP BY s.sale_date, i.sku"""

# The day of every sale line. Joining 10M lines to their sales by id costs a hash table of
# every sale; sale ids come in time order, though, so most days hold one dense run of ids
# (as many sales as ids between the day's first and last). Such a day's lines are dated by
# their id's range, found through buckets of 256 ids: a join on a table of a few thousand rows
# that stays in cache. The lines of the other days are joined to their sales. Sale ids are
# unique in raw.sales (the blocking ``unique_sale_ids`` check of raw/sales), so every id of a
# dense day's range is a sale of that day.
_DAY_RANGES_SQL = """
    CREATE OR REPLACE TEMP TABLE _marts_days AS
    SELECT sale_date, min(sale_id) AS lo, max(sale_id) AS hi,
           count(*) = max(sale_id) - min(sale_id) + 1 AS dense
    FROM raw.sales WHERE sale_date BETWEEN $start AND $end GROUP BY sale_date"""

_DATED_LINES = """(
    SELECT d.sale_date, i.sku, i.quantity, i.subtotal
    FROM raw.sale_items i
    JOIN (SELECT b, sale_date, lo, hi FROM _marts_days, range(lo >> 8, (hi >> 8) + 1) t(b)
          WHERE dense) d
      ON d.b = i.sale_id >> 8 AND i.sale_id BETWEEN d.lo AND d.hi
    UNION ALL
    SELECT s.sale_date, i.sku, i.quantity, i.subtotal
    FROM raw.sales s JOIN raw.sale_items i ON i.sale_id = s.sale_id
    WHERE s.sale_date IN (SELECT sale_date FROM _marts_days WHERE NOT dense))"""

# Per year first (a top-2 aggregate on the sales), then all history from the years' days:
# the first day is the earliest year's, the second is the earlier of the earliest year's
# second day and the next year's first day (a later year's second day comes after that).
_FIRSTS_SQL = """
    INSERT INTO marts.customer_firsts
    WITH per_year AS MATERIALIZED (
        SELECT customer_id, CAST(date_trunc('year', min(sale_date)) AS DATE) AS period_start,
               min(sale_date, 2) AS days
        FROM raw.sales WHERE customer_id IS NOT NULL {only_affected}
        GROUP BY customer_id, year(sale_date))
    SELECT 'year', period_start, customer_id, days[1], days[2] FROM per_year
    UNION ALL
    SELECT 'all', NULL, customer_id, min(days[1]),
           least(arg_min(days[2], period_start), min(days[1], 2)[2])
    FROM per_year GROUP BY customer_id"""


def _update_customer_firsts(con: duckdb.DuckDBPyConnection, start: date, end: date, whole: bool) -> None:
    """Refresh ``marts.customer_firsts`` for the customers whose first two days may have
    changed: everyone on a whole rebuild, else those with a sale in [start, end] now or
    with a first/second day recorded in it before."""
    if whole:
        con.execute("DELETE FROM marts.customer_firsts")
        con.execute(_FIRSTS_SQL.format(only_affected=""))
        return
    rng = {"start": start, "end": end}
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _marts_affected AS
           SELECT customer_id FROM raw.sales
           WHERE sale_date BETWEEN $start AND $end AND customer_id IS NOT NULL
           UNION
           SELECT customer_id FROM marts.customer_firsts
           WHERE first_date BETWEEN $start AND $end OR second_date BETWEEN $start AND $end""", rng)
    con.execute("DELETE FROM marts.customer_firsts WHERE customer_id IN (SELECT customer_id FROM _marts_affected)")
    con.execute(_FIRSTS_SQL.format(
        only_affected="AND customer_id IN (SELECT customer_id FROM _marts_affected)"))
    con.execute("DROP TABLE _marts_affected")


# Enough for dense ids of up to 16M sales; sparser ids fall back to an ordinary hash table.
_PERFECT_HASH_BITS = 24


def build_daily(con: duckdb.DuckDBPyConnection, start: date, end: date, *,
                provisional: bool = False) -> dict:
    """Replace the rows of [start, end] in ``marts.daily_sales`` (every day, zero days included)
    and ``marts.product_daily_sales`` (sku-days with sales), in one transaction.

    ``provisional`` marks the rows of a day still trading (today's figures so far, refreshed
    during the day); the daily run that closes the day writes them again with ``false``.

    One pass over the range's sale lines gives the sku-days; the days are summed from them
    (cost per sku from the inventory) and their orders counted from ``raw.sales``. Returns
    the number of rows written per table.
    """
    if start > end:
        raise ValueError(f"start {start} is after end {end}")
    ensure_marts(con)
    rng = {"start": start, "end": end}
    first, last = con.execute("SELECT min(sale_date), max(sale_date) FROM raw.sales").fetchone()
    marked = {**rng, "provisional": bool(provisional)}
    whole = first is None or (start <= first and end >= last)
    # A join (not IN) so that the range's sale ids prune the scan of raw.sale_items.
    items = "raw.sale_items" if whole else (
        "(SELECT i.* FROM raw.sale_items i JOIN raw.sales s ON s.sale_id = i.sale_id "
        "WHERE s.sale_date BETWEEN $start AND $end)")
    previous_bits = con.execute("SELECT current_setting('perfect_ht_threshold')").fetchone()[0]
    if whole:  # its table spans every sale id: worth it only when most ids are in the range
        con.execute(f"SET perfect_ht_threshold = {_PERFECT_HASH_BITS}")
    try:
        with transaction(con):
            con.execute(_REPEATS_SQL.format(items=items), rng)
            con.execute("DELETE FROM marts.daily_sales WHERE sale_date BETWEEN $start AND $end", rng)
            con.execute("DELETE FROM marts.product_daily_sales WHERE sale_date BETWEEN $start AND $end", rng)
            con.execute(_DAY_RANGES_SQL, rng)
            n_products = con.execute(
                f"""
                INSERT INTO marts.product_daily_sales
                SELECT l.sale_date, l.sku, CAST(l.n - coalesce(r.extra, 0) AS INTEGER),
                       CAST(l.units AS BIGINT), CAST(l.revenue AS DECIMAL(38,2)), $provisional
                FROM (SELECT sale_date, sku, count(*) AS n, sum(quantity) AS units,
                             sum(subtotal) AS revenue
                      FROM {_DATED_LINES} GROUP BY sale_date, sku) l
                LEFT JOIN _marts_repeats r ON r.sale_date = l.sale_date AND r.sku = l.sku
                ORDER BY l.sale_date, l.sku""", {"provisional": bool(provisional)},
            ).fetchone()[0]
            n_days = con.execute(
                f"""
                INSERT INTO marts.daily_sales
                WITH {KNOWN_COST},
                by_day AS (
                    SELECT p.sale_date, sum(p.units) AS units, sum(p.revenue) AS revenue,
                           coalesce(sum(p.units * k.cost), 0) AS cost,
                           coalesce(sum(p.revenue) FILTER (WHERE k.cost IS NOT NULL), 0) AS revenue_with_cost
                    FROM marts.product_daily_sales p LEFT JOIN known_cost k ON k.sku = p.sku
                    WHERE p.sale_date BETWEEN $start AND $end
                    GROUP BY p.sale_date),
                orders AS (
                    SELECT sale_date, count(*) AS orders,
                           count(*) FILTER (WHERE trim(customer_id) <> '') AS identified
                    FROM raw.sales
                    WHERE sale_date BETWEEN $start AND $end GROUP BY sale_date)
                SELECT c.sale_date,
                       CAST(coalesce(o.orders, 0) AS INTEGER), CAST(coalesce(d.units, 0) AS BIGINT),
                       CAST(coalesce(d.revenue, 0) AS DECIMAL(38,2)),
                       CAST(coalesce(d.cost, 0) AS DECIMAL(38,2)),
                       CAST(coalesce(d.revenue_with_cost - d.cost, 0) AS DECIMAL(38,2)),
                       CAST(coalesce(d.revenue_with_cost, 0) AS DECIMAL(38,2)),
                       CAST(coalesce(o.identified, 0) AS INTEGER), $provisional
                FROM (SELECT CAST(t AS DATE) AS sale_date
                      FROM range(CAST($start AS TIMESTAMP), CAST($end AS TIMESTAMP) + INTERVAL 1 DAY,
                                 INTERVAL 1 DAY) r(t)) c
                LEFT JOIN by_day d ON d.sale_date = c.sale_date
                LEFT JOIN orders o ON o.sale_date = c.sale_date
                ORDER BY c.sale_date""",
                marked,
            ).fetchone()[0]
            con.execute("DROP TABLE _marts_repeats")
            con.execute("DROP TABLE _marts_days")
            _update_customer_firsts(con, start, end, whole)
    finally:
        con.execute(f"SET perfect_ht_threshold = {int(previous_bits)}")
    return {"daily_sales": n_days, "product_daily_sales": n_products}


def provisional_days(con: duckdb.DuckDBPyConnection) -> list[date]:
    """Days whose marts hold figures so far (the day was still trading), oldest first. A
    warehouse from before the column (opened read-only, so not yet altered) has none."""
    if not con.execute("SELECT count(*) FROM duckdb_columns() WHERE database_name = current_database() "
                       "AND schema_name = 'marts' AND table_name = 'daily_sales' "
                       "AND column_name = 'provisional'").fetchone()[0]:
        return []
    return [d for (d,) in con.execute(
        "SELECT sale_date FROM marts.daily_sales WHERE provisional ORDER BY 1").fetchall()]


def latest_closed_sale_date(con: duckdb.DuckDBPyConnection) -> date | None:
    """The latest sale day of ``raw.sales`` that is not provisional (today's sales so far, kept
    during the day, do not move the as-of day of the daily marts)."""
    return con.execute(
        """SELECT max(sale_date) FROM raw.sales WHERE sale_date NOT IN
           (SELECT sale_date FROM marts.daily_sales WHERE provisional)""").fetchone()[0]


# -- as-of marts ---------------------------------------------------------------------------
def _by_window(aggregate: str) -> str:
    """A list with ``aggregate`` over each KPI window's rows, in ``WINDOWS`` order.

    Every window ends on as_of, so a row of a query limited to ``sale_date <= $as_of`` is in
    window i when ``sale_date >= $start_i``: one pass computes the five windows together.
    """
    return "[" + ", ".join(
        f"{aggregate} FILTER (WHERE sale_date >= $start_{i})" for i in range(len(WINDOWS))) + "]"


# Customer figures: 7d, 28d and mtd from their sales; ytd and all from marts.customer_firsts.
_RECENT = (WINDOWS.index("7d"), WINDOWS.index("28d"), WINDOWS.index("mtd"))
_YTD, _ALL = WINDOWS.index("ytd"), WINDOWS.index("all")
assert _RECENT == (0, 1, 2), "recent windows come first"

_KPIS_SQL = f"""
    INSERT INTO marts.kpis
    WITH w AS (SELECT * FROM _marts_windows),
    cur AS (
        SELECT w.window_name,
               coalesce(sum(d.revenue), 0) AS revenue, coalesce(sum(d.orders), 0) AS orders,
               coalesce(sum(d.units), 0) AS units, coalesce(sum(d.gross_profit), 0) AS gross_profit,
               coalesce(sum(d.revenue_with_cost), 0) AS revenue_with_cost,
               coalesce(sum(d.identified_orders), 0) AS identified
        FROM w LEFT JOIN marts.daily_sales d ON d.sale_date BETWEEN w.w_start AND w.w_end
        GROUP BY w.window_name),
    prev AS (
        SELECT w.window_name, coalesce(sum(d.revenue), 0) AS revenue
        FROM w LEFT JOIN marts.daily_sales d ON d.sale_date BETWEEN w.p_start AND w.p_end
        WHERE w.p_start IS NOT NULL
        GROUP BY w.window_name),
    peak AS (
        SELECT w.window_name, d.sale_date AS peak_day, d.revenue AS peak_revenue
        FROM w JOIN marts.daily_sales d ON d.sale_date BETWEEN w.w_start AND w.w_end
        WHERE d.orders > 0
        QUALIFY row_number() OVER (PARTITION BY w.window_name ORDER BY d.revenue DESC, d.sale_date) = 1),
    recent AS MATERIALIZED (
        SELECT [{", ".join(f"count(*) FILTER (WHERE sale_date >= $start_{i})" for i in _RECENT)}] AS n_orders
        FROM raw.sales
        WHERE sale_date BETWEEN $recent_start AND $as_of AND trim(customer_id) <> ''
        GROUP BY trim(customer_id)),
    -- customer_firsts keeps ids as stored; the rare ones that trimming (of spaces) changes
    -- are merged with their trimmed twins, the others are counted as they are
    long_rows AS (
        SELECT period, customer_id, first_date, second_date,
               starts_with(customer_id, ' ') OR ends_with(customer_id, ' ') OR customer_id = '' AS untrimmed
        FROM marts.customer_firsts
        WHERE period = 'all' OR (period = 'year' AND period_start = $start_{_YTD})),
    untrimmed_ids AS (SELECT DISTINCT trim(customer_id) AS customer_id FROM long_rows WHERE untrimmed),
    long_ids AS (
        SELECT period, first_date, second_date FROM long_rows
        WHERE NOT untrimmed AND customer_id NOT IN (SELECT customer_id FROM untrimmed_ids)
        UNION ALL
        SELECT period, min(first_date),
               list_sort(list_filter(flatten(list([first_date, second_date])), lambda x: x IS NOT NULL))[2]
        FROM long_rows
        WHERE trim(customer_id) IN (SELECT customer_id FROM untrimmed_ids) AND trim(customer_id) <> ''
        GROUP BY period, trim(customer_id)),
    cust AS (
        SELECT w.window_name, count(*) FILTER (WHERE r.n_orders[w.ord + 1] >= 1) AS customers,
               count(*) FILTER (WHERE r.n_orders[w.ord + 1] >= 2) AS repeaters
        FROM w CROSS JOIN recent r WHERE w.ord < {len(_RECENT)} GROUP BY w.window_name
        UNION ALL
        SELECT w.window_name, count(*) FILTER (WHERE l.first_date <= $as_of),
               count(*) FILTER (WHERE l.second_date <= $as_of)
        FROM w JOIN long_ids l
          ON (w.ord = {_YTD} AND l.period = 'year') OR (w.ord = {_ALL} AND l.period = 'all')
        GROUP BY w.window_name),
    figures AS (
        SELECT w.ord, w.window_name, w.w_start, w.w_end, c.revenue, c.orders, c.units,
               c.gross_profit, c.revenue_with_cost, p.revenue AS prev_revenue,
               pk.peak_day, pk.peak_revenue,
               c.orders AS n_sales, c.identified AS n_identified,
               coalesce(cu.customers, 0) AS customers, coalesce(cu.repeaters, 0) AS repeaters,
               {_div(f"({_cents('c.revenue')} - {_cents('p.revenue')}) * 100", _cents('p.revenue'), 2)}
                   AS growth,
               {_div(f"{_cents('c.gross_profit')} * 100", _cents('c.revenue_with_cost'), 2)} AS margin
        FROM w
        JOIN cur c ON c.window_name = w.window_name
        LEFT JOIN prev p ON p.window_name = w.window_name
        LEFT JOIN peak pk ON pk.window_name = w.window_name
        LEFT JOIN cust cu ON cu.window_name = w.window_name)
    SELECT $as_of, window_name,
           CAST(revenue AS DECIMAL(38,2)), CAST(orders AS INTEGER), CAST(units AS BIGINT),
           CAST({_div(_cents('revenue'), 'orders * 100', 2)} AS DECIMAL(38,2)),
           TRY_CAST(margin AS DECIMAL(9,2)),
           TRY_CAST(growth AS DECIMAL(9,2)),
           CASE WHEN n_identified > 0 THEN
               CAST({_div('repeaters * 100', 'customers', 2)} AS DECIMAL(9,2)) END,
           peak_day, CAST(peak_revenue AS DECIMAL(38,2)), w_start, w_end,
           CAST(gross_profit AS DECIMAL(38,2)),
           CAST({_div(f"{_cents('revenue_with_cost')} * 100", _cents('revenue'), 2)} AS DECIMAL(9,2)),
           CASE WHEN n_identified > 0 THEN CAST(customers AS INTEGER) END,
           NULLIF(concat_ws('; ',
               CASE WHEN n_sales = 0 THEN '{NO_SALES_NOTE}'
                    WHEN n_identified = 0 THEN '{NO_CUSTOMER_IDS_NOTE.replace("'", "''")}'
                    WHEN n_identified < n_sales THEN
                        'customer figures from ' || n_identified || ' of ' || n_sales
                        || ' orders (the others carry no customer id)'
               END,
               CASE WHEN growth IS NOT NULL AND TRY_CAST(growth AS DECIMAL(9,2)) IS NULL
                    THEN '{GROWTH_OUT_OF_RANGE_NOTE}' END,
               CASE WHEN margin IS NOT NULL AND TRY_CAST(margin AS DECIMAL(9,2)) IS NULL
                    THEN '{MARGIN_OUT_OF_RANGE_NOTE}' END), '')
    FROM figures
    ORDER BY ord"""

_TOP_PRODUCTS_SQL = f"""
    INSERT INTO marts.top_products
    WITH w AS (SELECT * FROM _marts_windows),
    sold AS (
        SELECT sku, {_by_window("sum(revenue)")} AS revenue, {_by_window("sum(units)")} AS units
        FROM marts.product_daily_sales WHERE sale_date BETWEEN $first_start AND $as_of
        GROUP BY sku),
    per_sku AS (
        SELECT w.window_name, w.ord, s.sku, s.revenue[w.ord + 1] AS revenue, s.units[w.ord + 1] AS units
        FROM w CROSS JOIN sold s
        WHERE s.units[w.ord + 1] IS NOT NULL),
    ranked AS (
        SELECT *, row_number() OVER (PARTITION BY window_name ORDER BY revenue DESC, sku) AS rnk,
               sum(revenue) OVER (PARTITION BY window_name) AS window_revenue
        FROM per_sku
        QUALIFY rnk <= $top_n),
    catalogue AS (SELECT sku, any_value(name) AS name FROM raw.products GROUP BY sku)
    SELECT $as_of, r.window_name, CAST(r.rnk AS INTEGER), r.sku, c.name,
           CAST(r.revenue AS DECIMAL(38,2)), CAST(r.units AS BIGINT),
           CAST({_div(f"{_cents('r.revenue')} * 100", _cents('r.window_revenue'), 2)} AS DECIMAL(9,2))
    FROM ranked r
    LEFT JOIN catalogue c ON c.sku = r.sku
    ORDER BY r.ord, r.rnk"""

# Skus no longer in the catalogue are named by their latest sale item up to as_of. Run only
# when such rows exist: it reads raw.sale_items.
_UNNAMED_TOP_PRODUCTS_SQL = """
    SELECT count(*) FROM marts.top_products WHERE as_of = $as_of AND product_name IS NULL"""
_NAME_TOP_PRODUCTS_SQL = """
    UPDATE marts.top_products t SET product_name = n.name
    FROM (
        WITH items AS MATERIALIZED (
            SELECT sale_id, line_no, sku, product_name FROM raw.sale_items
            WHERE sku IN (SELECT sku FROM marts.top_products
                          WHERE as_of = $as_of AND product_name IS NULL))
        SELECT i.sku, arg_max(i.product_name, (s.sale_ts, s.sale_id, i.line_no)) AS name
        FROM items i JOIN raw.sales s ON s.sale_id = i.sale_id
        WHERE s.sale_date <= $as_of
        GROUP BY i.sku) n
    WHERE t.as_of = $as_of AND t.product_name IS NULL AND t.sku = n.sku"""

_STOCK_STATUS_SQL = f"""
    INSERT INTO marts.stock_status
    WITH catalogue AS (
        SELECT sku, any_value(name) AS name, any_value(stock_quantity) AS stock,
               any_value(low_stock_threshold) AS threshold
        FROM raw.products GROUP BY sku),
    snap AS (
        SELECT sku, any_value(stock_quantity) AS stock, any_value(low_stock_threshold) AS threshold
        FROM raw.stock_snapshots WHERE snapshot_date = $as_of GROUP BY sku),
    sold AS (
        SELECT sku, coalesce(sum(units) FILTER (WHERE sale_date >= $from_28d), 0) AS units_28d,
               max(sale_date) AS last_sale_date
        FROM marts.product_daily_sales WHERE sale_date <= $as_of GROUP BY sku),
    base AS (
        SELECT c.sku, c.name,
               CASE WHEN s.sku IS NOT NULL THEN s.stock ELSE c.stock END AS stock,
               CASE WHEN s.sku IS NOT NULL THEN s.threshold ELSE c.threshold END AS threshold,
               coalesce(u.units_28d, 0) AS u28, u.last_sale_date
        FROM catalogue c
        LEFT JOIN snap s ON s.sku = c.sku
        LEFT JOIN sold u ON u.sku = c.sku),
    judged AS (
        SELECT *,
               u28 > 0 AND CAST(stock AS HUGEINT) * {AVG_UNITS_DAYS} < CAST($lead AS HUGEINT) * u28
                   AS short_cover,
               CASE WHEN stock <= 0 THEN 'OUT_OF_STOCK'
                    WHEN stock < threshold THEN 'LOW'
                    WHEN last_sale_date IS NULL OR last_sale_date < $from_dead THEN 'DEAD'
                    WHEN u28 > 0 AND CAST(stock AS HUGEINT) * {AVG_UNITS_DAYS}
                                     > CAST($overstock AS HUGEINT) * u28 THEN 'OVERSTOCK'
                    ELSE 'OK' END AS status
        FROM base)
    SELECT $as_of, sku, name, stock, threshold,
           CAST({_div('u28', str(AVG_UNITS_DAYS), 3)} AS DECIMAL(38,3)),
           TRY_CAST({_div(f'CAST(stock AS BIGINT) * {AVG_UNITS_DAYS}', 'u28', 1)} AS DECIMAL(12,1)),
           status,
           CASE WHEN status = 'OUT_OF_STOCK' THEN 'critical'
                WHEN status = 'LOW' THEN
                    CASE WHEN CAST(stock AS HUGEINT) * 4 <= threshold OR short_cover THEN 'high'
                         WHEN CAST(stock AS HUGEINT) * 2 <= threshold THEN 'medium'
                         ELSE 'low' END
                WHEN short_cover THEN 'medium'
                ELSE 'none' END,
           CAST(CASE WHEN status IN ('OUT_OF_STOCK', 'LOW') OR short_cover THEN
                    greatest(0, (CAST(u28 AS HUGEINT) * ($lead + $safety) + {AVG_UNITS_DAYS - 1})
                                // {AVG_UNITS_DAYS} + threshold - stock)
                ELSE 0 END AS BIGINT),
           last_sale_date
    FROM judged
    ORDER BY sku"""

_STOCK_TURNOVER_SQL = f"""
    INSERT INTO marts.stock_turnover
    WITH snaps AS (
        SELECT sku, count(*) AS n, count(DISTINCT snapshot_date) AS snapshot_days,
               sum(stock_quantity) AS total_stock
        FROM raw.stock_snapshots WHERE snapshot_date BETWEEN $from_turnover AND $as_of
        GROUP BY sku),
    skus AS (SELECT sku FROM raw.products UNION SELECT sku FROM snaps),
    sold AS (
        SELECT sku, sum(units) AS units
        FROM marts.product_daily_sales WHERE sale_date BETWEEN $from_turnover AND $as_of
        GROUP BY sku)
    SELECT $as_of, k.sku, CAST($turnover_days AS INTEGER), CAST(coalesce(u.units, 0) AS BIGINT),
           CAST({_div('s.total_stock', 's.n', 2)} AS DECIMAL(12,2)),
           CAST(coalesce(s.snapshot_days, 0) AS INTEGER),
           TRY_CAST({_div('coalesce(u.units, 0) * s.n', 's.total_stock', 3)} AS DECIMAL(12,3))
    FROM skus k
    LEFT JOIN snaps s ON s.sku = k.sku
    LEFT JOIN sold u ON u.sku = k.sku
    ORDER BY k.sku"""


def _params_of(sql: str, params: dict) -> dict:
    """The named parameters ``sql`` uses (DuckDB refuses unused ones)."""
    return {k: v for k, v in params.items() if re.search(rf"\${k}\b", sql)}


def build_as_of(
    con: duckdb.DuckDBPyConnection,
    as_of: date,
    *,
    top_n: int = 10,
    lead_time_days: int = DEFAULT_LEAD_TIME_DAYS,
    safety_days: int = 7,
    overstock_days: int = 120,
    turnover_days: int = TURNOVER_DAYS,
    stock: bool = True,
) -> dict:
    """Replace the ``as_of`` rows of kpis, top_products, stock_status and stock_turnover, in one
    transaction. KPIs read ``marts.daily_sales`` (customer figures read ``raw.sales``); top
    products, cover and turnover read ``marts.product_daily_sales``: build those first.

    With ``stock=False`` the stock marts are left as they are: the core keeps only today's
    stock, so a past day without a snapshot has no stock figures to report.

    Returns the rows written per table, and ``daily_days_missing``: days of the ``all`` window
    absent from ``marts.daily_sales`` (0 when the daily marts cover it).
    """
    if top_n < 1:
        raise ValueError(f"top_n must be at least 1, got {top_n}")
    if min(lead_time_days, safety_days, overstock_days) < 0 or turnover_days < 1:
        raise ValueError("lead_time_days, safety_days and overstock_days must be >= 0, turnover_days >= 1")
    ensure_marts(con)
    day = timedelta(days=1)
    with transaction(con):
        first_sale = con.execute(
            "SELECT min(sale_date) FROM raw.sales WHERE sale_date <= $as_of", {"as_of": as_of}
        ).fetchone()[0]
        windows = kpi_windows(as_of, first_sale)
        _load_windows(con, windows)
        tables = ("kpis", "top_products") + (("stock_status", "stock_turnover") if stock else ())
        for table in tables:
            con.execute(f"DELETE FROM marts.{table} WHERE as_of = $as_of", {"as_of": as_of})
        span = {"as_of": as_of, "first_start": min(w.start for w in windows),
                "recent_start": min(windows[i].start for i in _RECENT),
                **{f"start_{i}": w.start for i, w in enumerate(windows)}}
        counts = {
            "kpis": con.execute(_KPIS_SQL, _params_of(_KPIS_SQL, span)).fetchone()[0],
            "top_products": con.execute(_TOP_PRODUCTS_SQL, _params_of(_TOP_PRODUCTS_SQL, {**span, "top_n": top_n})).fetchone()[0],
        }
        if con.execute(_UNNAMED_TOP_PRODUCTS_SQL, {"as_of": as_of}).fetchone()[0]:
            con.execute(_NAME_TOP_PRODUCTS_SQL, {"as_of": as_of})
        counts |= {} if not stock else {
            "stock_status": con.execute(_STOCK_STATUS_SQL, {
                "as_of": as_of, "from_28d": as_of - (AVG_UNITS_DAYS - 1) * day,
                "from_dead": as_of - (DEAD_AFTER_DAYS - 1) * day, "lead": lead_time_days,
                "safety": safety_days, "overstock": overstock_days,
            }).fetchone()[0],
            "stock_turnover": con.execute(_STOCK_TURNOVER_SQL, {
                "as_of": as_of, "from_turnover": as_of - (turnover_days - 1) * day,
                "turnover_days": turnover_days,
            }).fetchone()[0],
        }
        all_window = windows[-1]
        present = con.execute(
            "SELECT count(*) FROM marts.daily_sales WHERE sale_date BETWEEN $start AND $end",
            {"start": all_window.start, "end": all_window.end},
        ).fetchone()[0]
        con.execute("DROP TABLE _marts_windows")
    counts["daily_days_missing"] = all_window.days - present
    return counts
