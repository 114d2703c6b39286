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
