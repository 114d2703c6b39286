"""Customer analytics: daily new/returning counts, RFM scores and segments, monthly cohorts.

A sale's customer is ``raw.sales.customer_id``; NULL or blank means an anonymous sale, which
counts as an order but never as a customer.

RFM (``marts.customer_rfm``), over all sales up to ``as_of``:

* ``recency_days`` = days from the customer's last sale to ``as_of``; ``frequency`` = number
  of sales; ``monetary`` = sum of their sales' ``total_amount``.
* Each score is the quintile (``ntile(5)``) of the customer among all customers, ordered from
  worst to best: recency descending (more recent = higher score), frequency and monetary
  ascending. Customers with equal values get the same score, the lowest quintile their group
  reaches, so a score never depends on the order of customer ids. With fewer than five
  customers the top scores are not reached (``ntile`` makes as many groups as there are rows).
* The segment comes from R and FM = round half-up of (F + M) / 2, following the widely used
  11-segment RFM table (segments placed on recency against the frequency-monetary mean, as
  in Putler's RFM guide). That table's score ranges overlap; ``SEGMENT_GRID`` settles every
  (R, FM) cell to exactly one segment::

      FM \\ R   1                2            3                4                   5
      5        Can't Lose Them  At Risk      Loyal            Champions           Champions
      4        Can't Lose Them  At Risk      Loyal            Champions           Champions
      3        At Risk          At Risk      Need Attention   Loyal               Loyal
      2        Lost             Hibernating  About to Sleep   Potential Loyalist  Potential Loyalist
      1        Lost             Hibernating  About to Sleep   Promising           New

Cohorts (``marts.cohort_retention``): a customer's cohort is the month of their first sale;
``customers`` at ``months_since`` = k counts the cohort's customers who bought in the k-th
month after it (k = 0 is the cohort month itself, always 100 %). Every cohort has a row for
each month up to ``as_of``'s month, which is counted up to ``as_of`` only.
"""

from __future__ import annotations

from datetime import date

import duckdb

from salesflow.warehouse import ensure_schema, has_table, transaction

NO_CUSTOMERS_NOTE = "no customer ids in the sales"

CUSTOMER_DDL = {
    "marts.customer_daily": """
        CREATE TABLE IF NOT EXISTS marts.customer_daily (
            sale_date DATE, orders INTEGER, identified_orders INTEGER, anonymous_orders INTEGER,
            customers INTEGER, new_customers INTEGER, returning_customers INTEGER)""",
    "marts.customer_rfm": """
        CREATE TABLE IF NOT EXISTS marts.customer_rfm (
            as_of DATE, customer_id VARCHAR, first_sale_date DATE, last_sale_date DATE,
            recency_days INTEGER, frequency INTEGER, monetary DECIMAL(38,2),
            r_score INTEGER, f_score INTEGER, m_score INTEGER, segment VARCHAR)""",
    "marts.cohort_retention": """
        CREATE TABLE IF NOT EXISTS marts.cohort_retention (
            as_of DATE, cohort_month DATE, months_since INTEGER, customers INTEGER,
            cohort_size INTEGER, retention_pct DECIMAL(9,2))""",
}
# a customer's spending over all history (see salesflow.marts.MARTS_WIDENED)
CUSTOMER_WIDENED = {"marts.customer_rfm": {"monetary": "DECIMAL(38,2)"}}

SEGMENTS = (
    "Champions", "Loyal", "Potential Loyalist", "New", "Promising", "Need Attention",
    "About to Sleep", "At Risk", "Can't Lose Them", "Hibernating", "Lost",
)

# SEGMENT_GRID[fm - 1][r - 1]
SEGMENT_GRID: tuple[tuple[str, ...], ...] = (
    ("Lost", "Hibernating", "About to Sleep", "Promising", "New"),
    ("Lost", "Hibernating", "About to Sleep", "Potential Loyalist", "Potential Loyalist"),
    ("At Risk", "At Risk", "Need Attention", "Loyal", "Loyal"),
    ("Can't Lose Them", "At Risk", "Loyal", "Champions", "Champions"),
    ("Can't Lose Them", "At Risk", "Loyal", "Champions", "Champions"),
)


def fm_score(f_score: int, m_score: int) -> int:
    """Mean of the frequency and monetary scores, rounded half-up."""
    return (f_score + m_score + 1) // 2


def segment_for(r_score: int, f_score: int, m_score: int) -> str:
    """The RFM segment of one customer's scores (each 1-5)."""
    for s in (r_score, f_score, m_score):
        if not 1 <= s <= 5:
            raise ValueError(f"RFM scores are 1-5, got {(r_score, f_score, m_score)}")
    return SEGMENT_GRID[fm_score(f_score, m_score) - 1][r_score - 1]


def _segment_sql() -> str:
    """The grid as a SQL CASE over ``r_score`` and ``fm`` (built from the constants above)."""
    cells = []
    for fm in range(1, 6):
        for r in range(1, 6):
            label = SEGMENT_GRID[fm - 1][r - 1].replace("'", "''")
            cells.append(f"WHEN r_score = {r} AND fm = {fm} THEN '{label}'")
    return "CASE " + " ".join(cells) + " END"


_SEGMENT_CASE = _segment_sql()

# Sales with the customer normalised: blank ids are anonymous.
_SALES = """
    sales AS (
        SELECT sale_id, sale_date, total_amount, NULLIF(trim(customer_id), '') AS customer_id
        FROM raw.sales)"""


def ensure_customer_marts(con: duckdb.DuckDBPyConnection) -> None:
    ensure_schema(con)
    for ddl in CUSTOMER_DDL.values():
        con.execute(ddl)


def _scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list) -> object:
    return con.execute(sql, params).fetchall()[0][0]


def _has_customers(con: duckdb.DuckDBPyConnection, as_of: date) -> bool:
    return _scalar(
        con,
        "SELECT count(*) FROM raw.sales "
        "WHERE NULLIF(trim(customer_id), '') IS NOT NULL AND sale_date <= $1",
        [as_of],
    ) > 0


def build_customer_daily(con: duckdb.DuckDBPyConnection, start: date, end: date) -> int:
    """Rebuild ``marts.customer_daily`` for every day of [start, end] (days without sales get
    zeros); returns the number of rows written. "New" means the customer's first sale ever is
    that day, "returning" that they bought that day and on some earlier day."""
    if start > end:
        raise ValueError(f"start {start} is after end {end}")
    ensure_customer_marts(con)
    with transaction(con):
        con.execute("DELETE FROM marts.customer_daily WHERE sale_date BETWEEN $1 AND $2", [start, end])
        con.execute(
            f"""
            INSERT INTO marts.customer_daily
            WITH {_SALES},
            firsts AS (
                SELECT customer_id, min(sale_date) AS first_sale_date
                FROM sales WHERE customer_id IS NOT NULL GROUP BY 1),
            days AS (
                SELECT CAST(d AS DATE) AS sale_date
                FROM range(CAST($1 AS TIMESTAMP), CAST($2 AS TIMESTAMP) + INTERVAL 1 DAY,
                           INTERVAL 1 DAY) t(d)),
            orders AS (
                SELECT sale_date, count(*) AS orders,
                       count(customer_id) AS identified_orders,
                       count(*) - count(customer_id) AS anonymous_orders
                FROM sales WHERE sale_date BETWEEN $1 AND $2 GROUP BY 1),
            buyers AS (
                SELECT DISTINCT s.sale_date, s.customer_id, f.first_sale_date
                FROM sales s JOIN firsts f USING (customer_id)
                WHERE s.sale_date BETWEEN $1 AND $2),
            people AS (
                SELECT sale_date, count(*) AS customers,
                       count(*) FILTER (WHERE first_sale_date = sale_date) AS new_customers,
                       count(*) FILTER (WHERE first_sale_date < sale_date) AS returning_customers
                FROM buyers GROUP BY 1)
            SELECT d.sale_date,
                   coalesce(o.orders, 0), coalesce(o.identified_orders, 0),
                   coalesce(o.anonymous_orders, 0), coalesce(p.customers, 0),
                   coalesce(p.new_customers, 0), coalesce(p.returning_customers, 0)
            FROM days d
            LEFT JOIN orders o USING (sale_date)
            LEFT JOIN people p USING (sale_date)
            ORDER BY d.sale_date""",
            [start, end],
        )
        n = _scalar(
            con, "SELECT count(*) FROM marts.customer_daily WHERE sale_date BETWEEN $1 AND $2",
            [start, end])
    return n


def build_customer_as_of(con: duckdb.DuckDBPyConnection, as_of: date) -> dict:
    """Rebuild ``marts.customer_rfm`` and ``marts.cohort_retention`` for ``as_of`` from all
    sales up to that day. Returns counts for run metadata."""
    ensure_customer_marts(con)
    has_customers = _has_customers(con, as_of)
    with transaction(con):
        con.execute("DELETE FROM marts.customer_rfm WHERE as_of = $1", [as_of])
        con.execute("DELETE FROM marts.cohort_retention WHERE as_of = $1", [as_of])
        if has_customers:
            _insert_rfm(con, as_of)
            _insert_cohorts(con, as_of)
        rfm_rows = _scalar(con, "SELECT count(*) FROM marts.customer_rfm WHERE as_of = $1", [as_of])
        cohort_rows = _scalar(
            con, "SELECT count(*) FROM marts.cohort_retention WHERE as_of = $1", [as_of])
    if not has_customers:
        return {"as_of": as_of.isoformat(), "customers": 0, "rfm_rows": 0, "cohort_rows": 0,
                "note": NO_CUSTOMERS_NOTE}
    segments = dict(con.execute(
        "SELECT segment, count(*) FROM marts.customer_rfm WHERE as_of = $1 "
        "GROUP BY 1 ORDER BY 2 DESC, 1", [as_of]).fetchall())
    cohorts = _scalar(
        con, "SELECT count(*) FROM marts.cohort_retention WHERE as_of = $1 AND months_since = 0",
        [as_of])
    return {"as_of": as_of.isoformat(), "customers": rfm_rows, "rfm_rows": rfm_rows,
            "cohort_rows": cohort_rows, "cohorts": cohorts, "segments": segments}


# RFM scores and segments of every customer as of $1, in the columns of marts.customer_rfm
_RFM_SELECT = f"""
    WITH {_SALES},
    base AS (
        SELECT customer_id, min(sale_date) AS first_sale_date, max(sale_date) AS last_sale_date,
               CAST(date_diff('day', max(sale_date), CAST($1 AS DATE)) AS INTEGER) AS recency_days,
               CAST(count(*) AS INTEGER) AS frequency,
               CAST(coalesce(sum(total_amount), 0) AS DECIMAL(38,2)) AS monetary
        FROM sales
        WHERE customer_id IS NOT NULL AND sale_date <= $1
        GROUP BY 1),
    tiles AS (
        SELECT *,
               ntile(5) OVER (ORDER BY recency_days DESC, customer_id) AS r_tile,
               ntile(5) OVER (ORDER BY frequency, customer_id) AS f_tile,
               ntile(5) OVER (ORDER BY monetary, customer_id) AS m_tile
        FROM base),
    scored AS (
        SELECT *,
               CAST(min(r_tile) OVER (PARTITION BY recency_days) AS INTEGER) AS r_score,
               CAST(min(f_tile) OVER (PARTITION BY frequency) AS INTEGER) AS f_score,
               CAST(min(m_tile) OVER (PARTITION BY monetary) AS INTEGER) AS m_score
        FROM tiles),
    fm AS (SELECT *, (f_score + m_score + 1) // 2 AS fm FROM scored)
    SELECT CAST($1 AS DATE) AS as_of, customer_id, first_sale_date, last_sale_date, recency_days,
           frequency, monetary, r_score, f_score, m_score, {_SEGMENT_CASE} AS segment
    FROM fm"""


def _insert_rfm(con: duckdb.DuckDBPyConnection, as_of: date) -> None:
    con.execute(f"INSERT INTO marts.customer_rfm {_RFM_SELECT} ORDER BY customer_id", [as_of])


def segment_counts(con: duckdb.DuckDBPyConnection, as_of: date) -> dict[str, int]:
    """Customers per RFM segment as of ``as_of``: what ``marts.customer_rfm`` holds for that day
    when it was built for it, else the same scoring computed now (the mart keeps the latest
    sale day; a report of an earlier week or month needs its own last day)."""
    rows = con.execute("SELECT segment, count(*) FROM marts.customer_rfm WHERE as_of = ? "
                       "GROUP BY 1", [as_of]).fetchall() if has_table(con, "marts", "customer_rfm") else []
    if not rows:
        rows = con.execute(f"SELECT segment, count(*) FROM ({_RFM_SELECT}) GROUP BY 1", [as_of]).fetchall()
    return {str(k): int(v) for k, v in rows}


def _insert_cohorts(con: duckdb.DuckDBPyConnection, as_of: date) -> None:
    con.execute(
        f"""
        INSERT INTO marts.cohort_retention
        WITH {_SALES},
        known AS (
            SELECT customer_id, CAST(date_trunc('month', sale_date) AS DATE) AS month
            FROM sales WHERE customer_id IS NOT NULL AND sale_date <= $1),
        cohort_of AS (
            SELECT customer_id, min(month) AS cohort_month FROM known GROUP BY 1),
        sizes AS (
            SELECT cohort_month, count(*) AS cohort_size FROM cohort_of GROUP BY 1),
        grid AS (
            SELECT z.cohort_month, z.cohort_size, CAST(k AS INTEGER) AS months_since
            FROM sizes z,
                 range(0, date_diff('month', z.cohort_month,
                                    CAST(date_trunc('month', CAST($1 AS DATE)) AS DATE)) + 1) t(k)),
        active AS (
            SELECT c.cohort_month,
                   CAST(date_diff('month', c.cohort_month, k.month) AS INTEGER) AS months_since,
                   count(DISTINCT k.customer_id) AS customers
            FROM known k JOIN cohort_of c USING (customer_id)
            GROUP BY 1, 2)
        SELECT CAST($1 AS DATE), g.cohort_month, g.months_since,
               CAST(coalesce(a.customers, 0) AS INTEGER), CAST(g.cohort_size AS INTEGER),
               CAST(CAST((20000 * coalesce(a.customers, 0) + g.cohort_size) // (2 * g.cohort_size)
                         AS DECIMAL(18,0)) * 0.01 AS DECIMAL(9,2))
        FROM grid g
        LEFT JOIN active a USING (cohort_month, months_since)
        ORDER BY g.cohort_month, g.months_since""",
        [as_of],
    )
