"""Expenses and monthly profit.

Expenses reach ``raw.expenses`` through spreadsheet imports; until the first import the table
is empty and the marts still build (``profit_monthly`` then shows zero expenses).

``build_expense_marts(con, as_of)`` rebuilds every month up to ``as_of``'s month, counting
sales and expenses dated up to ``as_of`` (so ``as_of``'s month is month-to-date). Rows of later
months are left as they are. An ``expense_id`` imported more than once counts once, as its
latest import. A blank category is ``Uncategorized``.

* ``marts.expenses_monthly``: amount per month and category, and its share of the month's
  expenses in percent (NULL when the month's expenses do not add up to more than zero).
* ``marts.profit_monthly``: revenue, gross profit and the revenue whose cost is known, summed
  from ``marts.daily_sales``; expenses; ``net_profit = gross_profit - expenses``.

Money is DECIMAL(18,2) per expense and DECIMAL(38,2) in the monthly marts; percentages are
rounded half-up (away from zero) to cents.
"""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal

import duckdb

from salesflow.warehouse import ensure_schema, transaction

UNCATEGORIZED = "Uncategorized"
NO_EXPENSES_NOTE = "no expenses imported yet"
CENT = Decimal("0.01")

EXPENSES_DDL = {
    "raw.expenses": """
        CREATE TABLE IF NOT EXISTS raw.expenses (
            expense_id VARCHAR, expense_date DATE, category VARCHAR, amount DECIMAL(18,2),
            description VARCHAR, vendor VARCHAR, source_file VARCHAR, imported_at TIMESTAMP)""",
    "marts.expenses_monthly": """
        CREATE TABLE IF NOT EXISTS marts.expenses_monthly (
            month DATE, category VARCHAR, amount DECIMAL(38,2), share_pct DECIMAL(9,2))""",
    "marts.profit_monthly": """
        CREATE TABLE IF NOT EXISTS marts.profit_monthly (
            month DATE, revenue DECIMAL(38,2), gross_profit DECIMAL(38,2),
            revenue_with_cost DECIMAL(38,2), expenses DECIMAL(38,2), net_profit DECIMAL(38,2))""",
}
# sums over a month (see salesflow.marts.MARTS_WIDENED)
_MONTHLY = ("revenue", "gross_profit", "revenue_with_cost", "expenses", "net_profit")
EXPENSES_WIDENED = {"marts.expenses_monthly": {"amount": "DECIMAL(38,2)"},
                    "marts.profit_monthly": {c: "DECIMAL(38,2)" for c in _MONTHLY}}

# Expenses up to $1 (the as-of day), one row per expense id (the latest import wins; rows
# without an id are all kept).
_EXPENSES = f"""
    expenses AS (
        SELECT CAST(date_trunc('month', expense_date) AS DATE) AS month,
               coalesce(NULLIF(trim(category), ''), '{UNCATEGORIZED}') AS category,
               amount
        FROM raw.expenses
        WHERE expense_date <= $1 AND amount IS NOT NULL
        QUALIFY expense_id IS NULL
             OR row_number() OVER (PARTITION BY expense_id
                                   ORDER BY imported_at DESC NULLS LAST, source_file DESC) = 1)"""


def ensure_expense_tables(con: duckdb.DuckDBPyConnection) -> None:
    ensure_schema(con)
    for ddl in EXPENSES_DDL.values():
        con.execute(ddl)


def _money(value) -> str:
    return str(Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP))


def _month_start(day: date) -> date:
    return day.replace(day=1)


def build_expense_marts(con: duckdb.DuckDBPyConnection, as_of: date) -> dict:
    """Rebuild ``marts.expenses_monthly`` and ``marts.profit_monthly`` for all months up to
    ``as_of``'s month, in one transaction. Returns counts and totals for run metadata."""
    ensure_expense_tables(con)
    last_month = _month_start(as_of)
    with transaction(con):
        con.execute("DELETE FROM marts.expenses_monthly WHERE month <= $1", [last_month])
        con.execute("DELETE FROM marts.profit_monthly WHERE month <= $1", [last_month])
        con.execute(
            f"""
            INSERT INTO marts.expenses_monthly
            WITH {_EXPENSES},
            by_category AS (
                SELECT month, category, sum(amount) AS amount FROM expenses GROUP BY 1, 2),
            cents AS (
                SELECT *, CAST(amount * 100 AS HUGEINT) AS c,
                       sum(CAST(amount * 100 AS HUGEINT)) OVER (PARTITION BY month) AS total_c
                FROM by_category)
            SELECT month, category, CAST(amount AS DECIMAL(38,2)),
                   CASE WHEN total_c > 0 THEN
                       CAST(CAST(sign(c) * ((20000 * abs(c) + total_c) // (2 * total_c))
                                 AS DECIMAL(18,0)) * 0.01 AS DECIMAL(9,2))
                   END
            FROM cents
            ORDER BY month, amount DESC, category""",
            [as_of],
        )
        con.execute(
            f"""
            INSERT INTO marts.profit_monthly
            WITH {_EXPENSES},
            exp AS (SELECT month, sum(amount) AS expenses FROM expenses GROUP BY 1),
            sales AS (
                SELECT CAST(date_trunc('month', sale_date) AS DATE) AS month,
                       sum(revenue) AS revenue, sum(gross_profit) AS gross_profit,
                       sum(revenue_with_cost) AS revenue_with_cost
                FROM marts.daily_sales WHERE sale_date <= $1 GROUP BY 1),
            months AS (SELECT month FROM exp UNION SELECT month FROM sales)
            SELECT m.month,
                   CAST(coalesce(s.revenue, 0) AS DECIMAL(38,2)),
                   CAST(coalesce(s.gross_profit, 0) AS DECIMAL(38,2)),
                   CAST(coalesce(s.revenue_with_cost, 0) AS DECIMAL(38,2)),
                   CAST(coalesce(e.expenses, 0) AS DECIMAL(38,2)),
                   CAST(coalesce(s.gross_profit, 0) - coalesce(e.expenses, 0) AS DECIMAL(38,2))
            FROM months m
            LEFT JOIN sales s USING (month)
            LEFT JOIN exp e USING (month)
            ORDER BY m.month""",
            [as_of],
        )
        expense_rows, expense_months, expenses_total = con.execute(
            "SELECT count(*), count(DISTINCT month), coalesce(sum(amount), 0) "
            "FROM marts.expenses_monthly WHERE month <= $1", [last_month]).fetchall()[0]
        profit_rows, net_total = con.execute(
            "SELECT count(*), coalesce(sum(net_profit), 0) FROM marts.profit_monthly "
            "WHERE month <= $1", [last_month]).fetchall()[0]
    out = {
        "as_of": as_of.isoformat(),
        "expense_rows": expense_rows,
        "expense_months": expense_months,
        "profit_rows": profit_rows,
        "expenses_total": _money(expenses_total),
        "net_profit_total": _money(net_total),
    }
    if expense_rows == 0:
        out["note"] = NO_EXPENSES_NOTE
    return out
