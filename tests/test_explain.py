"""Why revenue moved: hand-computed tiny shops, built into the marts the reports read."""

from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from fractions import Fraction

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from salesflow import anomalies, marts
from salesflow.reports import content
from salesflow.reports.explain import (comparison_periods, decompose, event_last_day,
                                       explain_anomaly, explain_total_anomaly, revenue_change,
                                       total_anomaly_attribution)
from salesflow.warehouse import ensure_schema

D = Decimal
LOADED = datetime(2025, 1, 1)

# sku -> (name, category, unit price)
CATALOGUE = {
    "BRD": ("Bread", "Bakery", "5.00"), "CAK": ("Cake", "Bakery", "20.00"),
    "COL": ("Cola", "Drinks", "3.00"), "JUI": ("Juice", "Drinks", "4.00"),
    "HOS": ("Hose", "Garden", "15.00"), "SEE": ("Seeds", "Garden", "6.00"),
    "MLK": ("Milk", "Dairy", "2.50"),
}
TUE_BASE, TUE_CUR = date(2025, 6, 3), date(2025, 6, 10)  # two Tuesdays
# per day: sales, each a list of (sku, quantity)
DAYS = {
    TUE_BASE: [[("BRD", 2), ("COL", 1)], [("CAK", 1)], [("JUI", 2)], [("HOS", 1)]],  # 56.00, 4 orders
    TUE_CUR: [[("BRD", 1), ("SEE", 2)], [("HOS", 1), ("MLK", 1)], [("COL", 1)]],  # 37.50, 3 orders
}


def build(days: dict[date, list], catalogue=CATALOGUE, categories=True) -> duckdb.DuckDBPyConnection:
    """A warehouse with the raw tables of ``days`` and its daily marts built over their span."""
    con = duckdb.connect()
    ensure_schema(con)
    for i, (sku, (name, category, price)) in enumerate(catalogue.items(), start=1):
        con.execute("INSERT INTO raw.products VALUES (?, ?, ?, ?, 10, 2, NULL, ?)",
                    [i, sku, name, D(price), LOADED])
        if categories:
            con.execute("INSERT INTO raw.inventory VALUES (?, ?, ?, 1.00, ?, 10, ?, ?)",
                        [sku, name, category, D(price), LOADED, LOADED])
    sale_id = 0
    for day, sales in sorted(days.items()):
        for lines in sales:
            sale_id += 1
            items = [(sku, q, D(catalogue[sku][2])) for sku, q in lines]
            total = sum((p * q for _, q, p in items), D("0.00"))
            con.execute("INSERT INTO raw.sales VALUES (?, ?, ?, ?, NULL, ?)",
                        [sale_id, datetime.combine(day, time(10)), day, total, LOADED])
            for n, (sku, q, p) in enumerate(items, start=1):
                con.execute("INSERT INTO raw.sale_items VALUES (?, ?, NULL, ?, ?, ?, ?, ?)",
                            [sale_id, n, sku, catalogue[sku][0], q, p, p * q])
    marts.build_daily(con, min(days), max(days))
    return con


def one_day(day: date) -> tuple[date, date]:
    return (day, day)


def assert_sums(rc) -> None:
    assert rc.orders_effect + rc.aov_effect == rc.change
    assert sum((c.amount for c in rc.contributors), D(0)) + rc.rest == rc.change


# -- the change and its parts ----------------------------------------------------------------
def test_down_day_by_category_hand_computed():
    con = build(DAYS)
    rc = revenue_change(con, one_day(TUE_CUR), one_day(TUE_BASE))
    assert (rc.current, rc.base, rc.change, rc.pct) == (D("37.50"), D("56.00"), D("-18.50"), D("-33.04"))
    assert (rc.orders_current, rc.orders_base, rc.aov_current, rc.aov_base) == (3, 4, D("12.50"), D("14.00"))
    # (3-4) x (12.50+14.00)/2 and (12.50-14.00) x (3+4)/2
    assert (rc.orders_effect, rc.aov_effect) == (D("-13.25"), D("-5.25"))
    assert rc.by == "category"
    # Bakery -25, Garden +12, Drinks -8, Dairy +2.50: the three largest, the falling ones first
    assert [(c.label, c.amount) for c in rc.contributors] == [
        ("Bakery", D("-25.00")), ("Drinks", D("-8.00")), ("Garden", D("12.00"))]
    assert rc.rest == D("2.50") and rc.others == 1 and rc.unattributed == 0
    assert_sums(rc)
    assert rc.sentences("EUR", "Tuesday 2025-06-03") == [
        "Revenue 37.50 EUR (-33% vs Tuesday 2025-06-03): 1 fewer order (-13.25 EUR) and a lower "
        "average order (-5.25 EUR).",
        "Bakery -25.00 EUR and Drinks -8.00 EUR drove the change, partly offset by Garden +12.00 EUR.",
    ]


def test_up_day_sentences_and_ranking_by_size_not_sign():
    con = build(DAYS)
    rc = revenue_change(con, one_day(TUE_BASE), one_day(TUE_CUR), top=2)
    assert (rc.change, rc.pct, rc.orders_effect, rc.aov_effect) == (D("18.50"), D("49.33"), D("13.25"), D("5.25"))
    # Garden's -12 outweighs Drinks' +8: the top two by size, even against the change
    assert [(c.label, c.amount) for c in rc.contributors] == [("Bakery", D("25.00")), ("Garden", D("-12.00"))]
    assert rc.rest == D("5.50") and rc.others == 2
    assert_sums(rc)
    assert rc.sentences("EUR", "Tuesday 2025-06-10") == [
        "Revenue 56.00 EUR (+49% vs Tuesday 2025-06-10): 1 more order (+13.25 EUR) and a higher "
        "average order (+5.25 EUR).",
        "Bakery +25.00 EUR drove the change, partly offset by Garden -12.00 EUR.",
    ]


def test_by_product_names_the_catalogue_products():
    con = build(DAYS)
    rc = revenue_change(con, one_day(TUE_CUR), one_day(TUE_BASE), by="product")
    # Cake -20, Seeds +12, Juice -8; Bread -5 and Milk +2.50 left; Cola and Hose unchanged
    assert [(c.label, c.key, c.amount) for c in rc.contributors] == [
        ("Cake", "CAK", D("-20.00")), ("Juice", "JUI", D("-8.00")), ("Seeds", "SEE", D("12.00"))]
    assert rc.rest == D("-2.50") and rc.others == 2
    assert_sums(rc)


def test_auto_takes_products_without_two_real_categories():
    one_category = {sku: (name, "Food", price) for sku, (name, _, price) in CATALOGUE.items()}
    for con in (build(DAYS, categories=False), build(DAYS, one_category)):
        rc = revenue_change(con, one_day(TUE_CUR), one_day(TUE_BASE))
        assert rc.by == "product"
        assert rc.contributors[0].label == "Cake"
        assert_sums(rc)


def test_skus_missing_from_the_inventory_are_uncategorized():
    con = build(DAYS)
    con.execute("DELETE FROM raw.inventory WHERE sku IN ('SEE', 'MLK')")
    rc = revenue_change(con, one_day(TUE_CUR), one_day(TUE_BASE), top=5)
    assert rc.by == "category"
    assert {c.label: c.amount for c in rc.contributors} == {
        "Bakery": D("-25.00"), "Drinks": D("-8.00"), "Uncategorized": D("14.50")}
    assert rc.rest == 0
    assert_sums(rc)


def test_zero_base_day_and_day_without_sales():
    days = {TUE_BASE - timedelta(days=7): [], TUE_BASE: [], TUE_CUR: DAYS[TUE_CUR]}
    con = build(days)
    up = revenue_change(con, one_day(TUE_CUR), one_day(TUE_BASE))
    assert (up.change, up.pct, up.orders_effect, up.aov_effect, up.aov_base) == (
        D("37.50"), None, D("37.50"), D("0.00"), None)
    assert_sums(up)
    assert up.sentences("EUR", "Tuesday 2025-06-03") == [
        "Revenue 37.50 EUR (vs no sales for Tuesday 2025-06-03): 3 orders, averaging 12.50 EUR.",
        "Garden +27.00 EUR, Bakery +5.00 EUR and Drinks +3.00 EUR made most of the change.",
    ]
    down = revenue_change(con, one_day(TUE_BASE), one_day(TUE_CUR))
    assert (down.change, down.pct, down.orders_effect, down.aov_effect) == (
        D("-37.50"), D("-100.00"), D("-37.50"), D("0.00"))
    assert_sums(down)
    assert down.sentences("EUR", "Tuesday 2025-06-10")[0] == (
        "No sales (vs 37.50 EUR for Tuesday 2025-06-10 from 3 orders).")
    empty = revenue_change(con, one_day(TUE_BASE), one_day(TUE_BASE - timedelta(days=7)))
    assert (empty.change, empty.contributors, empty.rest) == (D("0.00"), [], D("0.00"))
    assert empty.sentences("EUR", "Tuesday 2025-05-27") == ["No sales, as for Tuesday 2025-05-27."]
    # a base period the marts do not hold at all is not a day without sales
    unknown = revenue_change(con, one_day(TUE_CUR), one_day(TUE_BASE - timedelta(days=14)))
    assert (unknown.base_days, unknown.change) == (0, D("37.50"))
    assert_sums(unknown)
    assert unknown.sentences("EUR", "Tuesday 2025-05-20") == [
        "Revenue 37.50 EUR (no figures for Tuesday 2025-05-20 to compare with)."]


def test_same_revenue_and_more_orders_at_a_lower_average():
    # base: one 12.00 order; current: two orders of 6.00 (Cola x2 each)
    con = build({TUE_BASE: [[("COL", 4)]], TUE_CUR: [[("COL", 2)], [("COL", 2)]]})
    rc = revenue_change(con, one_day(TUE_CUR), one_day(TUE_BASE))
    # (2-1) x (6+12)/2 = +9; (6-12) x (2+1)/2 = -9
    assert (rc.change, rc.orders_effect, rc.aov_effect) == (D("0.00"), D("9.00"), D("-9.00"))
    assert rc.sentences("EUR", "Tuesday 2025-06-03") == [
        "Revenue 12.00 EUR (unchanged vs Tuesday 2025-06-03): 1 more order (+9.00 EUR) but a "
        "lower average order (-9.00 EUR)."]


def test_weekly_period_over_several_days():
    days = {TUE_BASE: DAYS[TUE_BASE], TUE_BASE + timedelta(days=1): [[("MLK", 4)]],
            TUE_CUR: DAYS[TUE_CUR], TUE_CUR + timedelta(days=1): [[("MLK", 2)], [("CAK", 1)]]}
    con = build(days)
    rc = revenue_change(con, (TUE_CUR, TUE_CUR + timedelta(days=6)),
                        (TUE_BASE, TUE_BASE + timedelta(days=6)))
    # current 37.50 + 25.00 = 62.50 in 5 orders; base 56.00 + 10.00 = 66.00 in 5 orders
    assert (rc.current, rc.base, rc.orders_current, rc.orders_base) == (D("62.50"), D("66.00"), 5, 5)
    assert (rc.orders_effect, rc.aov_effect) == (D("0.00"), D("-3.50"))
    assert rc.sentences("EUR", "the previous week")[0] == (
        "Revenue 62.50 EUR (-5% vs the previous week): the same number of orders and a lower "
        "average order (-3.50 EUR).")
    assert_sums(rc)
    # Bakery -5, Drinks -8, Garden +12, Dairy -2.50: the largest mover went against the change
    one = revenue_change(con, (TUE_CUR, TUE_CUR + timedelta(days=6)),
                         (TUE_BASE, TUE_BASE + timedelta(days=6)), top=1)
    assert one.sentences("EUR", "the previous week")[1] == (
        "Largest moves: Garden +12.00 EUR; the other 3 categories -15.50 EUR together.")
    assert_sums(one)


def test_rounding_remainder_goes_to_the_average_order():
    # 3 orders of 10.00 in all, then 7 orders of 20.01: the exact effects are 12.3838.. and
    # -2.3738..; the orders effect is rounded, the AOV effect takes the remainder
    assert decompose(D("20.01"), 7, D("10.00"), 3) == (D("12.38"), D("-2.37"))
    assert decompose(D("0.00"), 0, D("0.00"), 0) == (D("0.00"), D("0.00"))


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10**9), st.integers(0, 5000), st.integers(0, 10**9), st.integers(0, 5000))
def test_effects_sum_to_the_change_and_stay_within_half_a_cent(c1, o1, c0, o0):
    r1 = D(c1 if o1 else 0).scaleb(-2)
    r0 = D(c0 if o0 else 0).scaleb(-2)
    orders_effect, aov_effect = decompose(r1, o1, r0, o0)
    assert orders_effect + aov_effect == r1 - r0
    if o1 and o0:
        exact = (Fraction(r1) / o1 - Fraction(r0) / o0) * (o1 + o0) / 2
        assert abs(Fraction(aov_effect) - exact) <= Fraction(1, 200)
    else:
        assert aov_effect == 0


@pytest.mark.parametrize("seed", range(12))
def test_random_shops_explain_the_reports_change_to_the_cent(seed):
    """Random lines (odd prices, repeated skus, days without sales, skus outside the
    inventory): the parts add up to the change the report prints, whatever the grouping."""
    rng = random.Random(seed)
    catalogue = {f"S{i}": (f"Item {i}", rng.choice(["A", "B", "C", ""]), f"{rng.randint(1, 9999) / 100:.2f}")
                 for i in range(12)}
    start = date(2025, 3, 3)
    days = {start + timedelta(days=d): [[(rng.choice(list(catalogue)), rng.randint(1, 5))
                                         for _ in range(rng.randint(1, 4))]
                                        for _ in range(rng.choice([0, 1, 3, 7]))]
            for d in range(21)}
    con = build(days, catalogue)
    con.execute("DELETE FROM raw.inventory WHERE sku IN ('S0', 'S1')")
    as_of = start + timedelta(days=rng.randint(7, 20))
    for kind in ("daily", "weekly"):
        period = content.report_period(kind, as_of)
        report_change = content.load_kpis(con, period)[0][0]
        assert report_change.key == "revenue"
        for by in ("auto", "category", "product"):
            rc = revenue_change(con, (period.start, period.end), (period.prev_start, period.prev_end),
                                by=by, top=rng.randint(0, 4))
            assert rc.change == report_change.change
            assert rc.unattributed == 0
            assert_sums(rc)
            assert 1 <= len(rc.sentences("EUR", "x")) <= 2


def test_unknown_by_is_refused():
    with pytest.raises(ValueError):
        revenue_change(build(DAYS), one_day(TUE_CUR), one_day(TUE_BASE), by="brand")


# -- TOTAL anomalies -------------------------------------------------------------------------
ANOMALY_DAY = date(2025, 6, 10)  # a Tuesday


def anomaly_shop(day_sales: list) -> duckdb.DuckDBPyConnection:
    """Four Tuesdays of Bakery 60.00, Drinks 30.00, Garden 10.00 before ``ANOMALY_DAY``, a
    Wednesday of 1,000.00 Garden (another weekday: not in the shares), then the day."""
    catalogue = {"B": ("Bun", "Bakery", "0.01"), "D": ("Tea", "Drinks", "0.01"),
                 "G": ("Rake", "Garden", "0.01")}
    days = {ANOMALY_DAY - timedelta(weeks=w): [[("B", 6000)], [("D", 3000)], [("G", 1000)]]
            for w in range(1, 5)}
    days[ANOMALY_DAY - timedelta(days=6)] = [[("G", 100000)]]
    days[ANOMALY_DAY] = day_sales
    return build(days, catalogue)


def test_total_anomaly_names_the_category_with_its_share_of_the_gap():
    # expected 100.00 = Bakery 60 + Drinks 30 + Garden 10; observed 62.00 = 37.20 + 14.80 + 10
    con = anomaly_shop([[("B", 3720)], [("D", 1480)], [("G", 1000)]])
    assert explain_total_anomaly(con, ANOMALY_DAY, 62.0, 100.0, currency="EUR") == (
        "Revenue 38% below expected; Bakery (-22.80 EUR) accounted for 60% of the gap.")
    found = total_anomaly_attribution(con, ANOMALY_DAY, 62.0, 100.0, top=3)
    assert found.by == "category" and found.pct == D("-38.00")
    # Garden met its expected 10.00: no part of the gap
    assert [(s.label, s.gap, s.share_pct) for s in found.shares] == [
        ("Bakery", D("-22.80"), 60), ("Drinks", D("-15.20"), 40)]
    assert explain_total_anomaly(con, ANOMALY_DAY, 62.0, 100.0, top=2) == (
        "Revenue 38% below expected; Bakery (-22.80) and Drinks (-15.20) accounted for 100% of the gap.")


def test_total_anomaly_spike_and_the_degraded_sentences():
    # a spike: 150.00 where 100.00 was expected, Garden +45 of the +50
    con = anomaly_shop([[("B", 6500)], [("D", 3000)], [("G", 5500)]])
    assert explain_total_anomaly(con, ANOMALY_DAY, 150.0, 100.0) == (
        "Revenue 50% above expected; Garden (+45.00) accounted for 90% of the gap.")
    # an anomaly counted in orders is not shared by revenue
    assert explain_total_anomaly(con, ANOMALY_DAY, 3.0, 5.0, quantity="orders") == "Orders 40% below expected."
    # nothing expected, or nothing different: no sentence
    assert explain_total_anomaly(con, ANOMALY_DAY, 150.0, 0.0) is None
    assert explain_total_anomaly(con, ANOMALY_DAY, 100.0, 100.0) is None
    # no history on that weekday to share the expected revenue by
    assert explain_total_anomaly(con, ANOMALY_DAY + timedelta(days=2), 20.0, 100.0) == (
        "Revenue 80% below expected.")


def test_total_anomaly_broad_gaps_big_spikes_outages_and_other_figures():
    # 55.00 for 100.00: Bakery -18 (40%), Drinks -17 (38%), Garden -10 (22%)
    con = anomaly_shop([[("B", 4200)], [("D", 1300)]])
    assert explain_total_anomaly(con, ANOMALY_DAY, 55.0, 100.0) == (
        "Revenue 45% below expected, spread across 3 categories; Bakery (-18.00) accounted for "
        "40% of the gap.")
    # an observed figure that is not the day's revenue (55.00) is not shared out
    assert explain_total_anomaly(con, ANOMALY_DAY, 62.0, 100.0) == "Revenue 38% below expected."
    con = anomaly_shop([[("B", 26000)], [("D", 3000)], [("G", 1000)]])
    assert explain_total_anomaly(con, ANOMALY_DAY, 300.0, 100.0) == (
        "Revenue 3.0 times expected; Bakery (+200.00) accounted for 100% of the gap.")
    con = anomaly_shop([])
    assert explain_total_anomaly(con, ANOMALY_DAY, 0.0, 100.0) == (
        "Revenue 100% below expected: no sales at all.")


def test_total_anomaly_over_an_event_of_several_days():
    # the 28 days before the first day give the shares: 4 x 100.00 of Tuesdays (60/30/10 %)
    # plus the Wednesday's 1,000.00 of Garden: Bakery 240/1400, Drinks 120/1400, Garden 1040/1400
    con = anomaly_shop([[("B", 100)]])
    found = total_anomaly_attribution(con, ANOMALY_DAY, 1.0, 140.0, end=ANOMALY_DAY)
    assert found.shares[0].label == "Bakery"  # the one-day rule: Tuesdays only
    # the event's sums against its first day alone would not match: no attribution
    assert total_anomaly_attribution(con, ANOMALY_DAY, 5.0, 1400.0).by is None
    found = total_anomaly_attribution(con, ANOMALY_DAY, 1.0, 1400.0, end=ANOMALY_DAY + timedelta(days=1))
    # Garden expected 1,040.00 and sold nothing: 1,040 of the 1,399 gap
    assert (found.shares[0].label, found.shares[0].gap, found.shares[0].share_pct) == ("Garden", D("-1040.00"), 74)


def test_a_total_level_shift_row_is_attributed_over_its_days():
    catalogue = {"B": ("Bun", "Bakery", "0.01"), "D": ("Tea", "Drinks", "0.01"),
                 "G": ("Rake", "Garden", "0.01")}
    days = {ANOMALY_DAY - timedelta(weeks=w): [[("B", 6000)], [("D", 3000)], [("G", 1000)]]
            for w in range(1, 5)}
    for d in (ANOMALY_DAY, ANOMALY_DAY + timedelta(days=1)):  # 130.00 a day, Bakery +30
        days[d] = [[("B", 9000)], [("D", 3000)], [("G", 1000)]]
    con = build(days, catalogue)
    last = ANOMALY_DAY + timedelta(days=1)
    # the note as the anomaly scoring writes it; the row's figures are the two days' sums
    note = anomalies._event_note("TOTAL", ANOMALY_DAY, last, 2, 260.0, 200.0, "level_shift",
                                 True, "low", "EUR")
    assert event_last_day(note) == last
    row = {"series_id": "TOTAL", "ds": ANOMALY_DAY, "observed": 260.0, "expected": 200.0,
           "kind": "level_shift", "note": note}
    assert explain_anomaly(con, row, currency="EUR") == (
        "Revenue 30% above expected; Bakery (+60.00 EUR) accounted for 100% of the gap.")
    # without its last day the sums are not the first day's revenue: no attribution
    assert explain_anomaly(con, {**row, "note": ""}) == "Revenue 30% above expected."
    assert explain_anomaly(con, {**row, "series_id": "B"}) is None
    # a row without figures (NULL or NaN in the warehouse) gets no sentence rather than an error
    assert explain_anomaly(con, {**row, "expected": None}) is None
    assert explain_anomaly(con, {**row, "observed": float("nan")}) is None


# -- comparison periods ----------------------------------------------------------------------
def test_daily_compares_with_the_same_weekday_last_week():
    assert comparison_periods("daily", date(2025, 6, 10), date(2025, 6, 10)) == [
        ("Tuesday 3 June 2025", date(2025, 6, 3), date(2025, 6, 3))]
    assert comparison_periods("daily", date(2025, 1, 3), date(2025, 1, 3)) == [
        ("Friday 27 December 2024", date(2024, 12, 27), date(2024, 12, 27))]


def test_weekly_compares_with_the_previous_week_and_the_same_iso_week_last_year():
    assert comparison_periods("weekly", date(2025, 6, 9), date(2025, 6, 15)) == [
        ("the previous week", date(2025, 6, 2), date(2025, 6, 8)),
        ("the same week last year", date(2024, 6, 10), date(2024, 6, 16))]
    # ISO week 1 of 2025 starts in December 2024; week 1 of 2024 on January 1st
    assert comparison_periods("weekly", date(2024, 12, 30), date(2025, 1, 5)) == [
        ("the previous week", date(2024, 12, 23), date(2024, 12, 29)),
        ("the same week last year", date(2024, 1, 1), date(2024, 1, 7))]
    # week 53 of 2020 against the last week (52) of 2019
    assert comparison_periods("weekly", date(2020, 12, 28), date(2021, 1, 3))[1] == (
        "the same week last year", date(2019, 12, 23), date(2019, 12, 29))


def test_monthly_compares_with_the_previous_month_and_the_same_month_last_year():
    assert comparison_periods("monthly", date(2024, 2, 1), date(2024, 2, 29)) == [
        ("January 2024", date(2024, 1, 1), date(2024, 1, 31)),
        ("February 2023", date(2023, 2, 1), date(2023, 2, 28))]
    # a whole short month against whole longer ones
    assert comparison_periods("monthly", date(2025, 2, 1), date(2025, 2, 28)) == [
        ("January 2025", date(2025, 1, 1), date(2025, 1, 31)),
        ("February 2024", date(2024, 2, 1), date(2024, 2, 29))]
    # month to date: the same days, clipped to a shorter month; January against December
    assert comparison_periods("monthly", date(2024, 3, 1), date(2024, 3, 30)) == [
        ("February 2024", date(2024, 2, 1), date(2024, 2, 29)),
        ("1 - 30 March 2023", date(2023, 3, 1), date(2023, 3, 30))]
    assert comparison_periods("monthly", date(2025, 1, 1), date(2025, 1, 15)) == [
        ("1 - 15 December 2024", date(2024, 12, 1), date(2024, 12, 15)),
        ("1 - 15 January 2024", date(2024, 1, 1), date(2024, 1, 15))]
    with pytest.raises(ValueError):
        comparison_periods("yearly", date(2025, 1, 1), date(2025, 1, 31))
