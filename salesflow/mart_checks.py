"""Checks of the daily marts against the raw tables they are built from."""

from __future__ import annotations

from datetime import date

import duckdb


def check_daily_against_raw(con: duckdb.DuckDBPyConnection, start: date, end: date) -> list[dict]:
    """Days of [start, end] where marts.daily_sales disagrees with raw.sales/raw.sale_items."""
    rows = con.execute(
        """
        WITH raw_days AS (
            SELECT s.sale_date, count(DISTINCT s.sale_id) AS orders, sum(i.quantity) AS units,
                   sum(i.subtotal) AS revenue
            FROM raw.sales s JOIN raw.sale_items i USING (sale_id)
            WHERE s.sale_date BETWEEN $1 AND $2 GROUP BY 1),
        days AS (SELECT CAST(d AS DATE) AS sale_date
                 FROM range(CAST($1 AS TIMESTAMP), CAST($2 AS TIMESTAMP) + INTERVAL 1 DAY, INTERVAL 1 DAY) t(d))
        SELECT days.sale_date, coalesce(r.orders, 0), m.orders, coalesce(r.units, 0), m.units,
               coalesce(r.revenue, 0), m.revenue
        FROM days
        LEFT JOIN raw_days r USING (sale_date)
        LEFT JOIN marts.daily_sales m USING (sale_date)
        WHERE m.sale_date IS NULL OR m.orders <> coalesce(r.orders, 0)
           OR m.units <> coalesce(r.units, 0) OR m.revenue <> coalesce(r.revenue, 0)
        ORDER BY 1 LIMIT 50""",
        [start, end],
    ).fetchall()
    return [
        {"day": str(r[0]), "raw_orders": r[1], "mart_orders": r[2], "raw_units": r[3],
         "mart_units": r[4], "raw_revenue": str(r[5]), "mart_revenue": None if r[6] is None else str(r[6])}
        for r in rows
    ]


def check_products_add_up(con: duckdb.DuckDBPyConnection, start: date, end: date) -> list[dict]:
    """Days where the per-product units and revenue do not add up to the daily totals."""
    rows = con.execute(
        """
        SELECT d.sale_date, d.units, coalesce(p.units, 0), d.revenue, coalesce(p.revenue, 0)
        FROM marts.daily_sales d
        LEFT JOIN (SELECT sale_date, sum(units) AS units, sum(revenue) AS revenue
                   FROM marts.product_daily_sales WHERE sale_date BETWEEN $1 AND $2 GROUP BY 1) p
          USING (sale_date)
        WHERE d.sale_date BETWEEN $1 AND $2
          AND (d.units <> coalesce(p.units, 0) OR d.revenue <> coalesce(p.revenue, 0))
        ORDER BY 1 LIMIT 50""",
        [start, end],
    ).fetchall()
    return [
        {"day": str(r[0]), "daily_units": r[1], "product_units": r[2], "daily_revenue": str(r[3]),
         "product_revenue": str(r[4])}
        for r in rows
    ]


# Products whose data breaks an assumption of the marts: each still gets its rows where it can,
# and the others are built as usual; the problem is named so that someone can fix the source.
_PRODUCT_PROBLEMS_SQL = """
    WITH catalogue AS (SELECT sku, count(*) AS n, min(price) AS price FROM raw.products GROUP BY sku),
    sold AS (SELECT DISTINCT sku FROM marts.product_daily_sales
             WHERE sale_date BETWEEN $as_of - INTERVAL 89 DAY AND $as_of),
    known AS (SELECT sku FROM catalogue UNION SELECT sku FROM sold),
    problems AS (
        SELECT sku, 'listed ' || n || ' times in the catalogue: stock figures come from one of them'
        FROM catalogue WHERE n > 1
        UNION ALL
        SELECT sku, 'price 0 in the catalogue: its sales add units but no revenue, so revenue '
                    || 'rankings, shares and margins leave it out'
        FROM catalogue WHERE price = 0
        UNION ALL
        SELECT sku, 'sold in the last 90 days but missing from the catalogue: no stock status, '
                    || 'reorder quantity or stock alert'
        FROM sold WHERE sku NOT IN (SELECT sku FROM catalogue)
        UNION ALL
        SELECT sku, 'differs only in letter case from ' || string_agg(other, ', ' ORDER BY other)
                    || ': reports and spreadsheets may show them as one product'
        FROM (SELECT a.sku, b.sku AS other FROM known a JOIN known b
              ON lower(a.sku) = lower(b.sku) AND a.sku <> b.sku)
        GROUP BY sku
        UNION ALL
        SELECT sku, 'stock turnover beyond what marts.stock_turnover holds (DECIMAL(12,3)), left NULL'
        FROM marts.stock_turnover
        WHERE as_of = $stock_day AND turnover IS NULL AND units_sold > 0 AND avg_stock > 0)
    SELECT * FROM problems ORDER BY 1, 2 LIMIT $limit"""


def check_product_assumptions(con: duckdb.DuckDBPyConnection, as_of: date, stock_day: date | None,
                              limit: int = 50) -> list[dict]:
    """Products that break an assumption of the marts as of ``as_of``, each with the reason."""
    rows = con.execute(_PRODUCT_PROBLEMS_SQL, {"as_of": as_of, "stock_day": stock_day,
                                               "limit": limit}).fetchall()
    return [{"sku": sku, "problem": problem} for sku, problem in rows]
