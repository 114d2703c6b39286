"""Expense marts and monthly profit, to the cent, on hand-computed data."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest

from salesflow.expenses import NO_EXPENSES_NOTE, build_expense_marts, ensure_expense_tables
from salesflow.warehouse import connect

DAILY_SALES_DDL = """
    CREATE TABLE IF NOT EXISTS marts.daily_sales (
        sale_date DATE, orders INTEGER, units INTEGER, revenue DECIMAL(18,2), cost DECIMAL(18,2),
        gross_profit DECIMAL(18,2), revenue_with_cost DECIMAL(18,2))"""

# sale_date, revenue, cost, gross_profit, revenue_with_cost
DAILY_SALES = [
    ("2025-01-02", "500.00", "300.00", "200.00", "500.00"),
    ("2025-01-15", "333.33", "111.11", "222.22", "333.33"),
    ("2025-02-10", "100.05", "50.03", "40.02", "90.05"),
    ("2025-03-05", "80.00", "50.00", "30.00", "80.00"),
    ("2025-03-20", "1000.00", "400.00", "600.00", "1000.00"),  # after the as-of day
]

# expense_id, expense_date, category, amount, imported_at
EXPENSES = [
    ("E1", "2024-12-31", "Bank fees", "10.00", "2025-01-05 09:00"),
    ("E2", "2025-01-01", "Rent", "1000.00", "2025-01-05 09:00"),
    ("E3", "2025-01-12", "Utilities", "120.50", "2025-01-05 09:00"),
    ("E4", "2025-01-28", "Supplies", "79.50", "2025-02-01 09:00"),
    ("E5", "2025-02-01", "Rent", "31.00", "2025-02-20 10:00"),
    ("E6", "2025-02-15", " ", "5.00", "2025-02-20 10:00"),  # corrected by a later import:
    ("E6", "2025-02-15", "", "1.00", "2025-03-01 10:00"),  # the latest import wins
    ("E7", "2025-03-01", "Rent", "1000.00", "2025-03-02 10:00"),
    ("E8", "2025-03-10", "Supplies", "45.55", "2025-03-12 10:00"),
    ("E9", "2025-03-20", "Utilities", "99.99", "2025-03-12 10:00"),  # after the as-of day
    ("E10", "2025-04-01", "Rent", "1000.00", "2025-03-12 10:00"),  # a later month
]

AS_OF = date(2025, 3, 15)
D = date.fromisoformat


@pytest.fixture
def con(tmp_path):
    with connect(tmp_path / "w.duckdb") as c:
        ensure_expense_tables(c)
        c.execute(DAILY_SALES_DDL)
        c.executemany(
            "INSERT INTO marts.daily_sales VALUES (?, 1, 1, ?, ?, ?, ?, 0, false)",
            [(D(d), Decimal(r), Decimal(c_), Decimal(g), Decimal(w)) for d, r, c_, g, w in DAILY_SALES],
        )
        yield c


def add_expenses(con, rows) -> None:
    con.executemany(
        "INSERT INTO raw.expenses VALUES (?, ?, ?, ?, ?, 'vendor', 'sheet.xlsx', ?)",
        [(eid, D(d), cat, Decimal(amount), f"expense {eid}", datetime.fromisoformat(ts))
         for eid, d, cat, amount, ts in rows],
    )


def expenses_monthly(con):
    return con.execute(
        "SELECT month, category, amount, share_pct FROM marts.expenses_monthly ORDER BY 1, 3 DESC, 2"
    ).fetchall()


def profit_monthly(con):
    return con.execute("SELECT * FROM marts.profit_monthly ORDER BY month").fetchall()


def test_expense_breakdown_to_the_cent(con):
    add_expenses(con, EXPENSES)
    out = build_expense_marts(con, AS_OF)
    assert expenses_monthly(con) == [
        (D("2024-12-01"), "Bank fees", Decimal("10.00"), Decimal("100.00")),
        (D("2025-01-01"), "Rent", Decimal("1000.00"), Decimal("83.33")),
        (D("2025-01-01"), "Utilities", Decimal("120.50"), Decimal("10.04")),
        (D("2025-01-01"), "Supplies", Decimal("79.50"), Decimal("6.63")),  # 6.625 rounds up
        (D("2025-02-01"), "Rent", Decimal("31.00"), Decimal("96.88")),  # 96.875
        (D("2025-02-01"), "Uncategorized", Decimal("1.00"), Decimal("3.13")),  # 3.125
        (D("2025-03-01"), "Rent", Decimal("1000.00"), Decimal("95.64")),  # 95.6438...
        (D("2025-03-01"), "Supplies", Decimal("45.55"), Decimal("4.36")),
    ]
    assert out["expense_rows"] == 8 and out["expense_months"] == 4
    assert out["expenses_total"] == "2287.55" and "note" not in out


def test_net_profit_to_the_cent(con):
    add_expenses(con, EXPENSES)
    out = build_expense_marts(con, AS_OF)
    assert profit_monthly(con) == [
        # month, revenue, gross profit, revenue with cost, expenses, net profit
        (D("2024-12-01"), Decimal("0.00"), Decimal("0.00"), Decimal("0.00"), Decimal("10.00"),
         Decimal("-10.00")),
        (D("2025-01-01"), Decimal("833.33"), Decimal("422.22"), Decimal("833.33"),
         Decimal("1200.00"), Decimal("-777.78")),
        (D("2025-02-01"), Decimal("100.05"), Decimal("40.02"), Decimal("90.05"), Decimal("32.00"),
         Decimal("8.02")),
        (D("2025-03-01"), Decimal("80.00"), Decimal("30.00"), Decimal("80.00"), Decimal("1045.55"),
         Decimal("-1015.55")),
    ]
    assert out["profit_rows"] == 4 and out["net_profit_total"] == "-1795.31"


def test_empty_expenses_still_builds_profit(con):
    out = build_expense_marts(con, AS_OF)
    assert expenses_monthly(con) == []
    assert out["note"] == NO_EXPENSES_NOTE and out["expenses_total"] == "0.00"
    assert [(m, e, n) for m, _, _, _, e, n in profit_monthly(con)] == [
        (D("2025-01-01"), Decimal("0.00"), Decimal("422.22")),
        (D("2025-02-01"), Decimal("0.00"), Decimal("40.02")),
        (D("2025-03-01"), Decimal("0.00"), Decimal("30.00")),
    ]


def test_empty_everything(con):
    con.execute("DELETE FROM marts.daily_sales")
    out = build_expense_marts(con, AS_OF)
    assert (out["expense_rows"], out["profit_rows"]) == (0, 0)
    assert profit_monthly(con) == []


def test_rebuild_is_rerun_safe_and_follows_the_source(con):
    add_expenses(con, EXPENSES)
    build_expense_marts(con, AS_OF)
    first = (expenses_monthly(con), profit_monthly(con))
    build_expense_marts(con, AS_OF)
    assert (expenses_monthly(con), profit_monthly(con)) == first
    con.execute("DELETE FROM raw.expenses WHERE expense_id IN ('E1', 'E8')")
    build_expense_marts(con, AS_OF)
    months = [r[0] for r in expenses_monthly(con)]
    assert D("2024-12-01") not in months
    assert [r[1:] for r in expenses_monthly(con) if r[0] == D("2025-03-01")] == [
        ("Rent", Decimal("1000.00"), Decimal("100.00"))]
    march = profit_monthly(con)[-1]
    assert march[0] == D("2025-03-01") and march[4:] == (Decimal("1000.00"), Decimal("-970.00"))


def test_later_as_of_then_earlier_keeps_later_months(con):
    add_expenses(con, EXPENSES)
    build_expense_marts(con, date(2025, 4, 30))
    assert profit_monthly(con)[-1][0] == D("2025-04-01")
    build_expense_marts(con, date(2025, 2, 28))
    months = [r[0] for r in profit_monthly(con)]
    assert months == [D("2024-12-01"), D("2025-01-01"), D("2025-02-01"), D("2025-03-01"),
                      D("2025-04-01")]
    # March was built by the April run, with the whole month
    assert profit_monthly(con)[3][4] == Decimal("1145.54")


