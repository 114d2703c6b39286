"""Customer marts on a hand-computed shop: five customers over three months plus anonymous sales."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from salesflow import customers
from salesflow.customers import (
    NO_CUSTOMERS_NOTE,
    SEGMENT_GRID,
    SEGMENTS,
    build_customer_as_of,
    build_customer_daily,
    segment_counts,
    segment_for,
)
from salesflow.warehouse import connect, ensure_schema

# (sale_id, sale_date, total_amount, customer_id); None and blank are anonymous.
SALES = [
    (1, "2025-01-03", "10.00", "A"),
    (2, "2025-01-03", "4.00", None),
    (3, "2025-01-03", "20.00", "B"),
    (4, "2025-01-10", "15.00", "A"),
    (5, "2025-01-20", "5.00", "C"),
    (6, "2025-02-05", "30.00", "A"),
    (7, "2025-02-05", "12.50", "B"),
    (8, "2025-02-05", "3.00", None),
    (9, "2025-02-14", "100.00", "D"),
    (10, "2025-02-14", "5.00", "A"),
    (11, "2025-03-01", "8.00", "E"),
    (12, "2025-03-01", "2.00", None),
    (13, "2025-03-01", "1.00", " "),
    (14, "2025-03-15", "50.00", "D"),
    (15, "2025-03-20", "7.25", "A"),
    (16, "2025-03-20", "2.75", "A"),
]

JAN1, MAR31 = date(2025, 1, 1), date(2025, 3, 31)


def insert_sales(con, sales) -> None:
    if not sales:
        return
    con.executemany(
        "INSERT INTO raw.sales VALUES (?, ?, ?, ?, ?, ?)",
        [(sid, datetime.fromisoformat(d) + timedelta(hours=10), date.fromisoformat(d),
          Decimal(total), cust, datetime(2025, 4, 1)) for sid, d, total, cust in sales],
    )


@pytest.fixture
def con(tmp_path):
    with connect(tmp_path / "w.duckdb") as c:
        yield c


@pytest.fixture
def shop(con):
    insert_sales(con, SALES)
    return con


def daily(con, *days):
    rows = con.execute(
        "SELECT sale_date, orders, identified_orders, anonymous_orders, customers, new_customers, "
        "returning_customers FROM marts.customer_daily ORDER BY sale_date").fetchall()
    by_day = {r[0]: r[1:] for r in rows}
    return [by_day.get(date.fromisoformat(d)) for d in days]


def test_customer_daily_hand_computed(shop):
    assert build_customer_daily(shop, JAN1, MAR31) == 90
    assert daily(shop, "2025-01-03", "2025-01-10", "2025-01-20", "2025-02-05", "2025-02-14",
                 "2025-03-01", "2025-03-15", "2025-03-20", "2025-01-04") == [
        # orders, identified, anonymous, customers, new, returning
        (3, 2, 1, 2, 2, 0),
        (1, 1, 0, 1, 0, 1),
        (1, 1, 0, 1, 1, 0),
        (3, 2, 1, 2, 0, 2),
        (2, 2, 0, 2, 1, 1),
        (3, 1, 2, 1, 1, 0),  # a blank customer id is anonymous
        (1, 1, 0, 1, 0, 1),
        (2, 2, 0, 1, 0, 1),  # two sales of one customer on one day: one customer
        (0, 0, 0, 0, 0, 0),  # days without sales are zeros
    ]
    totals = shop.execute(
        "SELECT sum(orders), sum(anonymous_orders), sum(new_customers), sum(returning_customers) "
        "FROM marts.customer_daily").fetchall()[0]
    assert totals == (16, 4, 5, 6)


def test_customer_daily_new_is_first_sale_ever_even_outside_the_range(shop):
    build_customer_daily(shop, date(2025, 2, 1), date(2025, 2, 28))
    # A and B first bought in January: returning in February, not new
    assert daily(shop, "2025-02-05", "2025-02-14") == [(3, 2, 1, 2, 0, 2), (2, 2, 0, 2, 1, 1)]
    assert shop.execute("SELECT min(sale_date), max(sale_date), count(*) FROM marts.customer_daily"
                        ).fetchall() == [(date(2025, 2, 1), date(2025, 2, 28), 28)]


def test_customer_daily_rerun_replaces_its_range_only(shop):
    build_customer_daily(shop, JAN1, MAR31)
    before = shop.execute("SELECT * FROM marts.customer_daily ORDER BY sale_date").fetchall()
    assert build_customer_daily(shop, JAN1, MAR31) == 90
    assert shop.execute("SELECT * FROM marts.customer_daily ORDER BY sale_date").fetchall() == before
    # a late sale on 2025-03-15 by a new customer: rebuild that day only
    insert_sales(shop, [(17, "2025-03-15", "9.99", "F")])
    assert build_customer_daily(shop, date(2025, 3, 15), date(2025, 3, 15)) == 1
    assert daily(shop, "2025-03-15", "2025-03-20") == [(2, 2, 0, 2, 1, 1), (2, 2, 0, 1, 0, 1)]
    assert shop.execute("SELECT count(*) FROM marts.customer_daily").fetchall() == [(90,)]


def test_customer_daily_rejects_reversed_range(shop):
    with pytest.raises(ValueError):
        build_customer_daily(shop, MAR31, JAN1)


def rfm(con, as_of):
    return {r[0]: r[1:] for r in con.execute(
        "SELECT customer_id, first_sale_date, last_sale_date, recency_days, frequency, monetary, "
        "r_score, f_score, m_score, segment FROM marts.customer_rfm WHERE as_of = ?",
        [as_of]).fetchall()}


def test_rfm_hand_computed(shop):
    out = build_customer_as_of(shop, MAR31)
    assert out["customers"] == 5 and out["rfm_rows"] == 5 and "note" not in out
    d = date.fromisoformat
    assert rfm(shop, MAR31) == {
        # first, last, recency, frequency, monetary, R, F, M, segment
        "A": (d("2025-01-03"), d("2025-03-20"), 11, 6, Decimal("70.00"), 5, 5, 4, "Champions"),
        "B": (d("2025-01-03"), d("2025-02-05"), 54, 2, Decimal("32.50"), 2, 3, 3, "At Risk"),
        "C": (d("2025-01-20"), d("2025-01-20"), 70, 1, Decimal("5.00"), 1, 1, 1, "Lost"),
        "D": (d("2025-02-14"), d("2025-03-15"), 16, 2, Decimal("150.00"), 4, 3, 5, "Champions"),
        "E": (d("2025-03-01"), d("2025-03-01"), 30, 1, Decimal("8.00"), 3, 1, 2, "About to Sleep"),
    }
    assert out["segments"] == {"Champions": 2, "About to Sleep": 1, "At Risk": 1, "Lost": 1}


def test_rfm_only_counts_sales_up_to_as_of(shop):
    as_of = date(2025, 1, 31)
    build_customer_as_of(shop, as_of)
    got = rfm(shop, as_of)
    assert sorted(got) == ["A", "B", "C"]
    assert got["A"][2:5] == (21, 2, Decimal("25.00"))
    # ties share a score: no two customers with equal frequency differ in F
    assert got["B"][6] == got["C"][6] == 1


def test_segment_counts_of_a_day_the_mart_was_not_built_for(shop):
    """A weekly or monthly report needs the segments on its last day, while the mart keeps the
    latest sale day: the counts of an earlier day are scored as the mart would score them."""
    build_customer_as_of(shop, MAR31)
    jan31 = date(2025, 1, 31)
    assert segment_counts(shop, MAR31) == {"Champions": 2, "About to Sleep": 1, "At Risk": 1, "Lost": 1}
    earlier = segment_counts(shop, jan31)
    assert shop.execute("SELECT count(*) FROM marts.customer_rfm WHERE as_of = ?", [jan31]).fetchone()[0] == 0
    build_customer_as_of(shop, jan31)
    assert earlier == {seg: n for seg, n in shop.execute(
        "SELECT segment, count(*) FROM marts.customer_rfm WHERE as_of = ? GROUP BY 1", [jan31]).fetchall()}
    assert sum(earlier.values()) == 3


def test_segment_grid_covers_every_score_and_uses_all_segments():
    seen = {segment_for(r, f, m) for r in range(1, 6) for f in range(1, 6) for m in range(1, 6)}
    assert seen == set(SEGMENTS)
    assert {s for row in SEGMENT_GRID for s in row} == set(SEGMENTS)
    assert segment_for(5, 5, 5) == "Champions"
    assert segment_for(5, 1, 1) == "New"
    assert segment_for(1, 5, 4) == "Can't Lose Them"
    assert segment_for(1, 1, 1) == "Lost"
    with pytest.raises(ValueError):
        segment_for(0, 3, 3)


def ntile5(n: int) -> list[int]:
    """Bucket of each of n ordered rows, as SQL's ntile(5) assigns them."""
    size, extra = divmod(n, 5)
    out = []
    for bucket in range(1, 6):
        out += [bucket] * (size + (1 if bucket <= extra else 0))
    return out[:n]


def reference_scores(values: dict[str, object], reverse: bool) -> dict[str, int]:
    """Quintile scores with ties sharing the lowest bucket their group reaches."""
    order = sorted(values, key=lambda c: (values[c], c) if not reverse else (-values[c], c))
    tiles = dict(zip(order, ntile5(len(order))))
    lowest: dict[object, int] = {}
    for c in order:
        lowest.setdefault(values[c], tiles[c])
    return {c: lowest[values[c]] for c in values}


def test_scores_and_segments_match_a_python_reference(con):
    import random

    rnd = random.Random(3)
    sales = []
    for sid in range(1, 400):
        day = date(2025, 1, 1) + timedelta(days=rnd.randrange(120))
        sales.append((sid, day.isoformat(), f"{rnd.randrange(100, 3000) / 100:.2f}",
                      f"C{rnd.randrange(60)}"))
    insert_sales(con, sales)
    as_of = date(2025, 4, 30)
    build_customer_as_of(con, as_of)
    last, freq, money = {}, {}, {}
    for _, d, total, cust in sales:
        last[cust] = max(last.get(cust, d), d)
        freq[cust] = freq.get(cust, 0) + 1
        money[cust] = money.get(cust, Decimal(0)) + Decimal(total)
    recency = {c: (as_of - date.fromisoformat(d)).days for c, d in last.items()}
    r = reference_scores(recency, reverse=True)
    f = reference_scores(freq, reverse=False)
    m = reference_scores(money, reverse=False)
    got = rfm(con, as_of)
    assert set(got) == set(last)
    for c, row in got.items():
        assert row[2:5] == (recency[c], freq[c], money[c])
        assert row[5:] == (r[c], f[c], m[c], segment_for(r[c], f[c], m[c])), c
    assert len({row[5] for row in got.values()}) == 5


def cohorts(con, as_of):
    return con.execute(
        "SELECT cohort_month, months_since, customers, cohort_size, retention_pct "
        "FROM marts.cohort_retention WHERE as_of = ? ORDER BY 1, 2", [as_of]).fetchall()


def test_cohort_retention_hand_computed(shop):
    out = build_customer_as_of(shop, MAR31)
    jan, feb, mar = date(2025, 1, 1), date(2025, 2, 1), date(2025, 3, 1)
    assert cohorts(shop, MAR31) == [
        (jan, 0, 3, 3, Decimal("100.00")),
        (jan, 1, 2, 3, Decimal("66.67")),
        (jan, 2, 1, 3, Decimal("33.33")),
        (feb, 0, 1, 1, Decimal("100.00")),
        (feb, 1, 1, 1, Decimal("100.00")),
        (mar, 0, 1, 1, Decimal("100.00")),
    ]
    assert out["cohort_rows"] == 6 and out["cohorts"] == 3


def test_cohort_month_of_as_of_counts_up_to_as_of(shop):
    as_of = date(2025, 3, 10)
    build_customer_as_of(shop, as_of)
    got = {(c.month, k): (n, pct) for c, k, n, _, pct in cohorts(shop, as_of)}
    assert got[(1, 2)] == (0, Decimal("0.00"))  # A's March purchase is after the 10th
    assert got[(2, 1)] == (0, Decimal("0.00"))  # so is D's
    assert got[(3, 0)] == (1, Decimal("100.00"))


def test_as_of_rebuild_is_rerun_safe_and_keeps_other_days(shop):
    build_customer_as_of(shop, date(2025, 2, 28))
    build_customer_as_of(shop, MAR31)
    before = shop.execute("SELECT * FROM marts.customer_rfm ORDER BY ALL").fetchall()
    before_c = shop.execute("SELECT * FROM marts.cohort_retention ORDER BY ALL").fetchall()
    build_customer_as_of(shop, MAR31)
    assert shop.execute("SELECT * FROM marts.customer_rfm ORDER BY ALL").fetchall() == before
    assert shop.execute("SELECT * FROM marts.cohort_retention ORDER BY ALL").fetchall() == before_c
    assert shop.execute("SELECT as_of, count(*) FROM marts.customer_rfm GROUP BY 1 ORDER BY 1"
                        ).fetchall() == [(date(2025, 2, 28), 4), (MAR31, 5)]


def test_no_customer_ids(con):
    insert_sales(con, [(sid, d, total, None if cust is None else "")
                       for sid, d, total, cust in SALES])
    assert build_customer_daily(con, JAN1, MAR31) == 90
    assert daily(con, "2025-01-03", "2025-03-20") == [(3, 0, 3, 0, 0, 0), (2, 0, 2, 0, 0, 0)]
    assert con.execute("SELECT sum(orders), sum(anonymous_orders), sum(customers) "
                       "FROM marts.customer_daily").fetchall() == [(16, 16, 0)]
    out = build_customer_as_of(con, MAR31)
    assert out["customers"] == 0 and out["note"] == NO_CUSTOMERS_NOTE
    assert con.execute("SELECT count(*) FROM marts.customer_rfm").fetchall() == [(0,)]
    assert con.execute("SELECT count(*) FROM marts.cohort_retention").fetchall() == [(0,)]


def test_no_sales_at_all(con):
    out = build_customer_as_of(con, MAR31)
    assert out == {"as_of": "2025-03-31", "customers": 0, "rfm_rows": 0, "cohort_rows": 0,
                   "note": NO_CUSTOMERS_NOTE}
    assert build_customer_daily(con, JAN1, date(2025, 1, 7)) == 7


def test_failed_rebuild_leaves_previous_rows(shop, monkeypatch):
    build_customer_as_of(shop, MAR31)
    before = rfm(shop, MAR31)

    def boom(con, as_of):
        raise RuntimeError("cohorts failed")

    monkeypatch.setattr(customers, "_insert_cohorts", boom)
    with pytest.raises(RuntimeError):
        build_customer_as_of(shop, MAR31)
    assert rfm(shop, MAR31) == before


sales_lists = st.lists(
    st.tuples(st.integers(0, 40), st.one_of(st.none(), st.just(""), st.sampled_from("PQRSTUVW"))),
    max_size=60,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sales=sales_lists, split=st.integers(0, 40))
def test_property_new_customers_and_order_split(sales, split):
    con = duckdb.connect()
    try:
        ensure_schema(con)
        start = date(2025, 5, 1)
        insert_sales(con, [(i, (start + timedelta(days=off)).isoformat(), "1.00", cust)
                           for i, (off, cust) in enumerate(sales)])
        end = start + timedelta(days=40)
        mid = start + timedelta(days=split)
        # built in two pieces, as daily partitions would be
        build_customer_daily(con, start, mid)
        if mid < end:
            build_customer_daily(con, mid + timedelta(days=1), end)
        distinct = len({c for _, c in sales if c})
        rows = con.execute(
            "SELECT count(*), coalesce(sum(new_customers), 0), coalesce(sum(orders), 0), "
            "count(*) FILTER (WHERE identified_orders + anonymous_orders <> orders), "
            "count(*) FILTER (WHERE new_customers + returning_customers <> customers) "
            "FROM marts.customer_daily").fetchall()[0]
        assert rows == (41, distinct, len(sales), 0, 0)
    finally:
        con.close()
