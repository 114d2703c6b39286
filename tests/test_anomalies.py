"""Anomaly detection: planted spikes and drops in a seasonal shop, recurring calendar days,
promotions, shop-wide days, and stock that vanishes without sales."""

from __future__ import annotations

import re
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from salesflow.anomalies import (
    ANOMALY_COLUMNS,
    SalesAnomalyConfig,
    detect_sales_anomalies,
    detect_stock_anomalies,
    score_sales,
)
from salesflow.forecast import TOTAL, build_series
from salesflow.settings import ShopSettings

START, END = date(2023, 1, 2), date(2025, 6, 30)
WEEKLY = np.array([0.8, 0.85, 0.9, 1.0, 1.15, 1.45, 0.85])  # Monday .. Sunday
TOTAL_SPIKE, TOTAL_DROP = date(2024, 6, 12), date(2025, 3, 5)
SKU_SPIKE = date(2024, 9, 10)
PROMO = (date(2025, 2, 1), date(2025, 2, 10))


def fourth_friday_of_november(year: int) -> date:
    first = date(year, 11, 1)
    return first + timedelta(days=(4 - first.weekday()) % 7 + 21)


def _shop() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Marts-like frames: a shop closed every 25 December, with a sale day on the fourth Friday
    of November (x3.2) every year, planted anomalies, and two skus following the shop."""
    rng = np.random.default_rng(11)
    days = pd.date_range(START, END, freq="D")
    doy = days.dayofyear.to_numpy()
    factor = WEEKLY[days.dayofweek.to_numpy()] * (1 + 0.1 * np.sin(2 * np.pi * doy / 365.25))
    for i, d in enumerate(days.date):
        if (d.month, d.day) == (12, 25):
            factor[i] = 0.0
        elif d == fourth_friday_of_november(d.year):
            factor[i] *= 3.2
        elif d == TOTAL_SPIKE:
            factor[i] *= 5.0
        elif d == TOTAL_DROP:
            factor[i] *= 0.15
    orders = rng.poisson(100 * factor)
    share_a = np.where(days.date == SKU_SPIKE, 0.6, 0.12)
    promo = (days.date >= PROMO[0]) & (days.date <= PROMO[1])
    share_a = np.where(promo, 0.3, share_a)
    a_orders = rng.binomial(orders, share_a)
    b_orders = rng.binomial(orders - a_orders, 0.1)
    a_units = a_orders + rng.binomial(a_orders, 0.3)
    b_units = b_orders + rng.binomial(b_orders, 0.3)
    a_price = np.where(promo, 2.0, 2.5)
    revenue = orders * 11.0 + a_units * (a_price - 2.5)
    daily = pd.DataFrame({"sale_date": days.date, "orders": orders,
                          "units": orders * 2, "revenue": revenue})
    rows = []
    for sku, o, u, p in (("A", a_orders, a_units, a_price), ("B", b_orders, b_units, 4.0)):
        keep = o > 0
        rows.append(pd.DataFrame({"sale_date": days.date[keep], "sku": sku, "orders": o[keep],
                                  "units": u[keep], "revenue": (u * p)[keep]}))
    return daily, pd.concat(rows, ignore_index=True)


@pytest.fixture(scope="module")
def shop_series() -> pd.DataFrame:
    daily, product_daily = _shop()
    return build_series(daily, product_daily, END, detail=True)


@pytest.fixture(scope="module")
def found(shop_series) -> pd.DataFrame:
    return detect_sales_anomalies(shop_series, END, lookback_days=None)


def _row(found: pd.DataFrame, series_id: str, day: date) -> pd.Series | None:
    hit = found[(found["series_id"] == series_id) & (found["ds"] == day)]
    return hit.iloc[0] if len(hit) else None


def test_rows_have_the_contract_columns_and_an_email_sentence(found):
    assert list(found.columns) == ANOMALY_COLUMNS
    assert (found["as_of"] == END).all()
    assert set(found["direction"]) <= {"up", "down"}
    assert set(found["severity"]) <= {"low", "medium", "high"}
    for r in found.itertuples(index=False):
        assert r.note.endswith(".") and len(r.note) > 60
        assert (r.observed > r.upper) or (r.observed < r.lower)
        assert r.lower <= r.expected <= r.upper


def test_planted_shop_spike_and_drop_are_found_with_direction_and_severity(found):
    spike = _row(found, TOTAL, TOTAL_SPIKE)
    assert spike is not None
    assert (spike["direction"], spike["kind"], spike["severity"]) == ("up", "spike", "high")
    assert spike["observed"] > 3 * spike["expected"] and spike["score"] > 4
    assert "Shop revenue on Wed 12 Jun 2024" in spike["note"] and "spike" in spike["note"]
    drop = _row(found, TOTAL, TOTAL_DROP)
    assert drop is not None
    assert (drop["direction"], drop["kind"], drop["severity"]) == ("down", "drop", "high")
    assert drop["score"] < -4


def test_a_planted_sku_spike_is_found_in_units(found):
    spike = _row(found, "A", SKU_SPIKE)
    assert spike is not None
    assert (spike["direction"], spike["kind"]) == ("up", "spike")
    assert spike["severity"] in ("medium", "high")
    assert "units" in spike["note"] and spike["note"].startswith("Sales of A on Tue 10 Sep 2024")


def test_recurring_calendar_days_alarm_in_their_first_year_only(found):
    first_christmas = _row(found, TOTAL, date(2023, 12, 25))
    assert first_christmas is not None and first_christmas["kind"] == "outage"
    first_sale_day = _row(found, TOTAL, fourth_friday_of_november(2023))
    assert first_sale_day is not None and first_sale_day["kind"] == "spike"
    for year in (2024,):
        assert _row(found, TOTAL, date(year, 12, 25)) is None
        assert _row(found, TOTAL, fourth_friday_of_november(year)) is None
    # nor do the products alarm on the shop's calendar days
    skus = found[found["series_id"] != TOTAL]
    calendar = {date(y, 12, 25) for y in (2023, 2024)} | {fourth_friday_of_november(2024)}
    assert not set(skus["ds"]) & calendar


def test_products_follow_a_shop_wide_day_without_a_row_each_and_promotions_do_not_alarm(found):
    assert _row(found, "A", TOTAL_SPIKE) is None and _row(found, "B", TOTAL_SPIKE) is None
    promo = found[(found["series_id"] == "A") & (found["ds"] >= PROMO[0]) & (found["ds"] <= PROMO[1])]
    assert promo.empty


def test_nothing_else_alarms_in_a_calm_shop(found):
    expected = {(TOTAL, TOTAL_SPIKE), (TOTAL, TOTAL_DROP), ("A", SKU_SPIKE),
                (TOTAL, date(2023, 12, 25)), (TOTAL, fourth_friday_of_november(2023))}
    assert set(zip(found["series_id"], found["ds"])) <= expected


def test_daily_run_reports_only_the_lookback_window(shop_series, found):
    as_of = TOTAL_SPIKE + timedelta(days=2)
    recent = detect_sales_anomalies(shop_series, as_of, lookback_days=7)
    assert (recent["as_of"] == as_of).all()
    assert recent["ds"].between(as_of - timedelta(days=6), as_of).all()
    assert _row(recent, TOTAL, TOTAL_SPIKE) is not None
    # the same verdict as with the whole history: only the past informs a day
    full = _row(found, TOTAL, TOTAL_SPIKE)
    assert _row(recent, TOTAL, TOTAL_SPIKE)["expected"] == pytest.approx(full["expected"])


def test_detection_is_deterministic_and_works_without_order_counts(shop_series, found):
    again = detect_sales_anomalies(shop_series, END, lookback_days=None)
    pd.testing.assert_frame_equal(found, again)
    plain = detect_sales_anomalies(shop_series[["unique_id", "ds", "y"]], END, lookback_days=None)
    assert _row(plain, TOTAL, TOTAL_SPIKE) is not None and _row(plain, TOTAL, TOTAL_DROP) is not None
    scored = score_sales(shop_series, END)
    assert {"expected", "lower", "upper", "score", "valid", "flag"} <= set(scored.columns)
    assert len(scored) == len(shop_series)


# -- sku drops weighed in units; closed days ---------------------------------------------------
DROP_BOTH, DROP_ORDERS = date(2025, 3, 12), date(2025, 4, 16)


@pytest.fixture(scope="module")
def drop_series() -> pd.DataFrame:
    """A busy sku (about 12 orders a day of two units each) and a slow one (1.5 orders a day).
    On DROP_BOTH the busy sku sells 2 units in 2 orders (a fall in orders and in units per
    order: customers put off); on DROP_ORDERS 2 orders of 3 units each."""
    rng = np.random.default_rng(5)
    start = date(2024, 1, 1)
    days = pd.date_range(start, END, freq="D")
    weekly = WEEKLY[days.dayofweek.to_numpy()]
    orders = rng.poisson(150 * weekly)
    busy, slow = rng.poisson(12 * weekly), rng.poisson(1.5 * weekly)
    busy_units, slow_units = busy + rng.poisson(busy), slow + rng.poisson(slow)
    for day, o, u in ((DROP_BOTH, 2, 2), (DROP_ORDERS, 2, 6)):
        i = days.get_loc(pd.Timestamp(day))
        busy[i], busy_units[i] = o, u
    daily = pd.DataFrame({"sale_date": days.date, "orders": orders, "units": orders * 2,
                          "revenue": orders * 10.0})
    rows = []
    for sku, o, u in (("BUSY", busy, busy_units), ("SLOW", slow, slow_units)):
        keep = o > 0
        rows.append(pd.DataFrame({"sale_date": days.date[keep], "sku": sku, "orders": o[keep],
                                  "units": u[keep], "revenue": u[keep] * 3.0}))
    return build_series(daily, pd.concat(rows, ignore_index=True), END, detail=True)


def test_a_sku_drop_is_weighed_in_units_and_a_slow_skus_empty_days_are_not(drop_series):
    found = detect_sales_anomalies(drop_series, END, lookback_days=None)
    drop = _row(found, "BUSY", DROP_BOTH)
    assert drop is not None
    assert (drop["direction"], drop["kind"], drop["severity"]) == ("down", "drop", "high")
    assert drop["observed"] == 2 and drop["observed"] < drop["lower"] < drop["expected"]
    # the same fall in orders, with customers still buying their usual quantities or more, is
    # weaker evidence: no alarm
    assert _row(found, "BUSY", DROP_ORDERS) is None
    # a slow seller's days without a sale are the same fall (to nothing) by chance
    slow = drop_series[drop_series["unique_id"] == "SLOW"]
    assert (slow["y"] == 0).sum() > 50
    assert found[found["series_id"] == "SLOW"].empty
    # a daily run reports the same row
    recent = detect_sales_anomalies(drop_series, DROP_BOTH + timedelta(days=3), lookback_days=7)
    again = _row(recent, "BUSY", DROP_BOTH)
    assert again is not None and again["lower"] == pytest.approx(drop["lower"])


def test_configured_closed_days_do_not_alarm_without_a_year_before(shop_series):
    closed = SalesAnomalyConfig(closed_days=("12-25", "2024-03-05"))
    found = detect_sales_anomalies(shop_series, END, lookback_days=None, config=closed)
    # closed on the first Christmas of the history: no outage row, for the shop or a product
    assert found[found["ds"] == date(2023, 12, 25)].empty
    # a drop on an ordinary day still alarms, a closure configured for one date only (a year
    # before the planted drop) does not hide it
    drop = _row(found, TOTAL, TOTAL_DROP)
    assert drop is not None and drop["kind"] == "drop"
    assert _row(found, TOTAL, TOTAL_SPIKE) is not None
    # without the setting the first Christmas is an outage (see the calendar test)
    assert _row(detect_sales_anomalies(shop_series, END, lookback_days=None),
                TOTAL, date(2023, 12, 25)) is not None



def test_closed_days_come_from_the_environment_and_a_bad_day_is_refused_by_name():
    shop = ShopSettings.from_env({"SALESFLOW_CLOSED_DAYS": " 12-25, 01-01,2026-04-06 ,,02-29"})
    assert shop.closed_days == ("12-25", "01-01", "2026-04-06", "02-29")
    assert ShopSettings.from_env({}).closed_days == ()
    for bad in ("12/25", "25-12", "2026-02-30", "Christmas"):
        with pytest.raises(ValueError, match=re.escape(repr(bad))):
            ShopSettings.from_env({"SALESFLOW_CLOSED_DAYS": f"01-01,{bad}"})

# -- stock -----------------------------------------------------------------------------------
def _stock_case():
    days = [date(2025, 6, 1) + timedelta(days=i) for i in range(6)]
    stock = {
        "LOST": [40, 38, 36, 14, 13, 12],   # 22 units vanish on 4 June without a sale
        "RESTOCK": [10, 8, 50, 48, 46, 44],  # a delivery on 3 June
        "SOLD": [30, 20, 10, 5, 5, 5],       # every fall is a sale
    }
    sold = {"LOST": [0, 2, 2, 0, 1, 1], "RESTOCK": [0, 2, 2, 2, 2, 2], "SOLD": [0, 10, 10, 5, 0, 0]}
    snaps = pd.DataFrame([(d, sku, s[i], 5) for sku, s in stock.items() for i, d in enumerate(days)],
                         columns=["snapshot_date", "sku", "stock_quantity", "low_stock_threshold"])
    units = pd.DataFrame([(d, sku, u[i]) for sku, u in sold.items() for i, d in enumerate(days)
                          if u[i] > 0], columns=["sale_date", "sku", "units"])
    return days, snaps, units


def test_stock_that_drops_without_sales_is_flagged_and_a_restock_is_not():
    days, snaps, units = _stock_case()
    out = detect_stock_anomalies(snaps, units, days[-1], lookback_days=None)
    assert list(out.columns) == ANOMALY_COLUMNS
    assert len(out) == 1
    r = out.iloc[0]
    assert (r["series_id"], r["ds"], r["direction"], r["kind"]) == ("LOST", days[3], "down", "stock_drop")
    assert r["observed"] == 14 and r["expected"] == 36 and r["severity"] == "high"
    assert r["score"] < 0 and np.isnan(r["upper"]) and r["lower"] < r["expected"]
    assert "22 units (61% of the stock) went missing" in r["note"]


def test_stock_lookback_and_missing_days():
    days, snaps, units = _stock_case()
    assert detect_stock_anomalies(snaps, units, days[-1], lookback_days=2).empty
    assert len(detect_stock_anomalies(snaps, units, days[3], lookback_days=1)) == 1
    # without the 3 June snapshot the loss shows between 2 and 4 June, net of both days' sales
    gap = snaps[snaps["snapshot_date"] != days[2]]
    out = detect_stock_anomalies(gap, units, days[-1], lookback_days=None)
    assert list(out["series_id"]) == ["LOST"] and out.iloc[0]["expected"] == 36
    assert detect_stock_anomalies(snaps.iloc[0:0], units, days[-1]).empty


def test_rows_insert_into_the_warehouse_contract_table(found, tmp_path):
    import duckdb

    from salesflow.warehouse import ensure_schema

    _, snaps, units = _stock_case()
    stock = detect_stock_anomalies(snaps, units, date(2025, 6, 6), lookback_days=None)
    rows = pd.concat([found, stock], ignore_index=True)
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        ensure_schema(con)
        con.register("rows", rows)
        con.execute("INSERT INTO ml.sales_anomalies SELECT * FROM rows")
        kinds = con.execute("SELECT kind, count(*), count(upper) FROM ml.sales_anomalies "
                            "GROUP BY kind ORDER BY kind").fetchall()
        assert kinds == [("drop", 1, 1), ("outage", 1, 1), ("spike", 3, 3), ("stock_drop", 1, 0)]
    finally:
        con.close()


# -- daily totals (one line per product per day), events that last, days the shop does not trade
OPEN = np.array([0.9, 0.95, 1.0, 1.05, 1.3, 0.0, 0.8])  # Monday .. Sunday; closed on Saturdays
D_START, D_END = date(2023, 1, 2), date(2025, 3, 31)
D_SPIKE, D_DROP = date(2024, 5, 14), date(2024, 7, 10)


def _lines(d, sku: str, units: np.ndarray, price: float, orders=1) -> pd.DataFrame:
    """A product's lines on the days ``d`` it sold (``units`` > 0), at ``price`` a unit;
    ``orders`` per day, or 1 on every selling day (a till exporting day totals)."""
    keep = units > 0
    return pd.DataFrame({"sale_date": d[keep], "sku": sku,
                         "orders": orders[keep] if np.ndim(orders) else orders,
                         "units": units[keep], "revenue": units[keep] * price})


def _marts(rows: list[pd.DataFrame], days=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The shop's day totals and its product lines from per-product frames; with ``days``,
    every one of those days has a total (0 where nothing sold)."""
    product_daily = pd.concat(rows, ignore_index=True)
    daily = product_daily.groupby("sale_date")[["orders", "units", "revenue"]].sum()
    if days is not None:
        daily = daily.reindex(days, fill_value=0).rename_axis("sale_date")
    return daily.reset_index(), product_daily


D_STOCKOUT = (date(2024, 9, 10), date(2024, 9, 12))  # Tuesday .. Thursday, no sale
D_SHIFT = (date(2025, 2, 3), date(2025, 3, 2))  # four weeks at 60%


def _daily_totals_shop() -> tuple[pd.DataFrame, pd.DataFrame]:
    """A shop whose till exports one line per product and day (orders are 1 on every selling
    day), closed on Saturdays and every 25 December; 200 products, and the busy product DAILY
    (about 30 units a day) with a 3x spike, a drop to a fifth, a three-day stock-out and a
    four-week fall to 60%."""
    rng = np.random.default_rng(21)
    days = pd.date_range(D_START, D_END, freq="D")
    open_ = OPEN[days.dayofweek.to_numpy()] * np.array(
        [0.0 if (d.month, d.day) == (12, 25) else 1.0 for d in days.date])
    rows = []
    for i in range(200):
        sku = "DAILY" if i == 0 else f"P{i:03d}"
        rate = 30.0 if i == 0 else rng.uniform(0.3, 8.0)
        lam = rate * open_
        if i == 0:
            d = days.date
            lam = np.where(d == D_DROP, lam * 0.2, lam)
            lam = np.where((d >= D_SHIFT[0]) & (d <= D_SHIFT[1]), lam * 0.6, lam)
            lam = np.where((d >= D_STOCKOUT[0]) & (d <= D_STOCKOUT[1]), 0.0, lam)
        units = rng.poisson(lam)
        if i == 0:
            units[days.get_loc(pd.Timestamp(D_SPIKE))] *= 3
        rows.append(_lines(days.date, sku, units, 2.5))
    return _marts(rows, days.date)


@pytest.fixture(scope="module")
def totals_series() -> pd.DataFrame:
    daily, product_daily = _daily_totals_shop()
    return build_series(daily, product_daily, D_END, detail=True)


@pytest.fixture(scope="module")
def totals_found(totals_series) -> pd.DataFrame:
    return detect_sales_anomalies(totals_series, D_END, lookback_days=None)


def test_with_orders_always_1_a_spike_and_a_drop_are_found_on_units(totals_series, totals_found):
    daily = totals_series[totals_series["unique_id"] == "DAILY"]
    assert set(daily.loc[daily["y"] > 0, "orders"]) == {1.0}
    spike = _row(totals_found, "DAILY", D_SPIKE)
    assert spike is not None and (spike["direction"], spike["kind"]) == ("up", "spike")
    assert spike["observed"] > 2 * spike["expected"]
    assert "units" in spike["note"]
    drop = _row(totals_found, "DAILY", D_DROP)
    assert drop is not None and (drop["direction"], drop["kind"]) == ("down", "drop")


def test_a_three_day_stockout_of_a_daily_seller_is_one_row(totals_found):
    rows = totals_found[(totals_found["series_id"] == "DAILY")
                        & (totals_found["ds"] >= D_STOCKOUT[0])
                        & (totals_found["ds"] <= D_STOCKOUT[1] + timedelta(days=2))]
    assert len(rows) == 1
    r = rows.iloc[0]
    assert (r["ds"], r["direction"], r["kind"]) == (D_STOCKOUT[0], "down", "stockout")
    assert r["observed"] == 0 and r["expected"] > 40
    assert "3 open days" in r["note"] and r["note"].startswith("No sales of DAILY")


def test_a_persistent_fall_of_40_percent_is_found_as_one_level_shift(totals_found):
    rows = totals_found[(totals_found["series_id"] == "DAILY")
                        & (totals_found["ds"] >= D_SHIFT[0] - timedelta(days=3))
                        & (totals_found["ds"] <= D_SHIFT[1])]
    assert list(rows["kind"]) == ["level_shift"]
    r = rows.iloc[0]
    assert r["direction"] == "down" and r["ds"] <= D_SHIFT[0] + timedelta(days=7)
    assert 0.45 < r["observed"] / r["expected"] < 0.75
    assert "level shift" in r["note"]


def test_closed_saturdays_and_a_recurring_christmas_raise_nothing(totals_found):
    assert not any(d.weekday() == 5 for d in totals_found["ds"])
    # the shop's first Christmas may alarm (nothing to learn it from); the second does not,
    # and no product's empty Christmas or weekend is a stock-out
    assert totals_found[totals_found["ds"] == date(2024, 12, 25)].empty
    skus = totals_found[totals_found["series_id"] != TOTAL]
    assert not any((d.month, d.day) == (12, 25) for d in skus["ds"])
    planted = {("DAILY", D_SPIKE), ("DAILY", D_DROP), ("DAILY", D_STOCKOUT[0])}
    others = skus[[(s, d) not in planted and not (D_SHIFT[0] - timedelta(days=3) <= d
                                                   <= D_SHIFT[1])
                   for s, d in zip(skus["series_id"], skus["ds"])]]
    # 199 quiet products over two years: chance days only, fewer than 1 per 1,000 product-days
    assert len(others) < 199 * (D_END - D_START).days / 1000


def test_a_continuing_event_keeps_its_key_on_every_daily_run(totals_series, totals_found):
    totals_series = totals_series[totals_series["unique_id"].isin([TOTAL, "DAILY"])]
    totals_found = detect_sales_anomalies(totals_series, D_END, lookback_days=None)
    keys, notes = set(), []
    for k in range(1, 7):
        as_of = D_STOCKOUT[0] + timedelta(days=k)
        found = detect_sales_anomalies(totals_series, as_of, lookback_days=7)
        mine = found[(found["series_id"] == "DAILY") & (found["direction"] == "down")]
        keys |= set(zip(mine["series_id"], mine["ds"], mine["direction"]))
        notes += list(mine["note"])
    assert keys == {("DAILY", D_STOCKOUT[0], "down")}
    assert any("2 open days so far" in n for n in notes) and any("3 open days so far" in n
                                                                 for n in notes)
    # the shift: every daily run from its detection on reports the same first day
    shift_keys = set()
    for k in range(0, 28, 3):
        as_of = D_SHIFT[0] + timedelta(days=k)
        found = detect_sales_anomalies(totals_series, as_of, lookback_days=7)
        mine = found[(found["series_id"] == "DAILY") & (found["kind"] == "level_shift")]
        shift_keys |= set(zip(mine["series_id"], mine["ds"], mine["direction"]))
    whole = totals_found[(totals_found["series_id"] == "DAILY")
                         & (totals_found["kind"] == "level_shift")]
    assert shift_keys == set(zip(whole["series_id"], whole["ds"], whole["direction"]))
    assert len(shift_keys) == 1


S_OUT = (date(2025, 3, 3), date(2025, 3, 12))  # ten days without a sale
S_FOUND = date(2025, 3, 13)  # one last unit found on the shelf
S_AGAIN = (date(2025, 3, 14), date(2025, 3, 19))  # and six more empty days


def _stockout_with_a_blip() -> tuple[pd.DataFrame, pd.DataFrame]:
    """A shop of 20 products open every day; BUSY sells about 25 orders a day, then runs out
    of stock for ten days, sells one unit and is empty for six days more."""
    rng = np.random.default_rng(5)
    end = S_AGAIN[1] + timedelta(days=2)
    days = pd.date_range(date(2024, 1, 1), end, freq="D")
    d = days.date
    rows = []
    for i in range(20):
        sku = "BUSY" if i == 0 else f"Q{i:02d}"
        orders = rng.poisson(25.0 if i == 0 else rng.uniform(1.0, 6.0), len(days))
        if i == 0:
            out = ((d >= S_OUT[0]) & (d <= S_OUT[1])) | ((d >= S_AGAIN[0]) & (d <= S_AGAIN[1]))
            orders = np.where(out, 0, orders)
            orders = np.where(d == S_FOUND, 1, orders)
        units = orders + rng.binomial(orders, 0.2)
        rows.append(_lines(d, sku, units, 3.0, orders))
    return _marts(rows)


def test_a_stockout_interrupted_by_one_sale_is_one_event_with_one_key():
    daily, product_daily = _stockout_with_a_blip()
    end = max(daily["sale_date"])
    series = build_series(daily, product_daily, end, detail=True)
    found = detect_sales_anomalies(series, end, lookback_days=None)
    busy = found[(found["series_id"] == "BUSY") & (found["direction"] == "down")]
    assert list(zip(busy["ds"], busy["kind"])) == [(S_OUT[0], "stockout")]
    assert "16 open days so far" in busy["note"].iloc[0]
    # every daily run during the second empty spell mails the same alert, not a new one
    keys = set()
    for k in range(0, 6):
        run = detect_sales_anomalies(series, S_AGAIN[0] + timedelta(days=k), lookback_days=7)
        mine = run[(run["series_id"] == "BUSY") & (run["direction"] == "down")]
        keys |= set(zip(mine["ds"], mine["kind"]))
    assert keys == {(S_OUT[0], "stockout")}


def test_a_level_shift_row_tells_the_size_of_the_fall_not_a_mix_with_the_adapted_days(
        totals_found):
    # the expected level follows the new level within weeks: the row's figures are those of
    # the days up to where the evidence peaked, a fall to 60%, not diluted by the later days
    r = totals_found[(totals_found["series_id"] == "DAILY")
                     & (totals_found["kind"] == "level_shift")].iloc[0]
    assert 0.5 < r["observed"] / r["expected"] < 0.7
    assert "40% below" in r["note"]


HALVED = date(2024, 7, 1)  # a slow seller's sales halve for good from this day


def _slow_seller_halves() -> tuple[pd.DataFrame, pd.DataFrame]:
    """A shop of 30 products open every day; SLOW sells on about one day in three (one to
    three units an order) and from HALVED on at half that rate, for a year."""
    rng = np.random.default_rng(8)
    days = pd.date_range(date(2023, 7, 1), date(2025, 6, 30), freq="D")
    d = days.date
    rows = []
    for i in range(30):
        sku = "SLOW" if i == 0 else f"P{i:02d}"
        rate = 0.4 if i == 0 else rng.uniform(2.0, 8.0)
        lam = np.full(len(days), rate)
        if i == 0:
            lam = np.where(d >= HALVED, rate / 2, lam)
        orders = rng.poisson(lam)
        units = orders + rng.binomial(2 * orders, 0.4)
        rows.append(_lines(d, sku, units, 2.0, orders))
    return _marts(rows)


def test_a_slow_sellers_lasting_fall_is_followed_not_reported_for_months():
    daily, product_daily = _slow_seller_halves()
    end = date(2025, 6, 30)
    series = build_series(daily, product_daily, end, min_history=28, min_sale_days=1,
                          detail=True)
    found = detect_sales_anomalies(series, end, lookback_days=None)
    slow = found[(found["series_id"] == "SLOW") & (found["kind"] == "level_shift")]
    assert len(slow) <= 1
    # the expected level follows the new level: over the last six months it is about what the
    # product sold, not the level from before the fall
    days = score_sales(series, end)
    mine = days[(days["series_id"] == "SLOW") & (days["ds"] >= pd.Timestamp(2025, 1, 1))]
    assert 0.75 < mine["expected"].sum() / mine["observed"].sum() < 1.33
    # and the last daily run reports no shift that began months ago as if it were news
    run = detect_sales_anomalies(series, end, lookback_days=7)
    old = run[(run["kind"] == "level_shift") & (run["ds"] < end - timedelta(days=90))]
    assert old.empty


# four customers' cases within a week
CASES = (date(2025, 5, 6), date(2025, 5, 8), date(2025, 5, 10), date(2025, 5, 13))
RISE = (date(2025, 5, 26), date(2025, 6, 22))  # four weeks at twice the level


def _cases_shop() -> tuple[pd.DataFrame, pd.DataFrame]:
    """One line per product and day (orders 1), open every day; CASES sells about 20 units a
    day and now and then a customer's case of 150 more, four of them within a week;
    RISE sells about 20 a day and twice that for four weeks."""
    rng = np.random.default_rng(13)
    days = pd.date_range(date(2024, 1, 1), date(2025, 6, 30), freq="D")
    d = days.date
    rows = []
    for i in range(30):
        sku = ("CASES", "RISE")[i] if i < 2 else f"P{i:02d}"
        lam = np.full(len(days), 20.0 if i < 2 else rng.uniform(2.0, 8.0))
        if i == 1:
            lam = np.where((d >= RISE[0]) & (d <= RISE[1]), 2 * lam, lam)
        units = rng.poisson(lam)
        if i == 0:
            units = units + 150 * ((rng.random(len(days)) < 0.02) | np.isin(d, CASES))
        rows.append(_lines(d, sku, units, 2.0))
    return _marts(rows)


def test_a_few_cases_at_the_day_total_grain_are_no_level_shift_but_a_lasting_rise_is():
    daily, product_daily = _cases_shop()
    end = date(2025, 6, 30)
    series = build_series(daily, product_daily, end, detail=True)
    found = detect_sales_anomalies(series, end, lookback_days=None)
    shifts = found[found["kind"] == "level_shift"]
    cases = shifts[(shifts["series_id"] == "CASES") & (shifts["ds"] >= CASES[0] - timedelta(7))]
    assert cases.empty
    rise = shifts[(shifts["series_id"] == "RISE") & (shifts["direction"] == "up")]
    assert len(rise) == 1 and RISE[0] <= rise["ds"].iloc[0] <= RISE[0] + timedelta(days=7)
