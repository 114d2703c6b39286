from __future__ import annotations

import csv
import re
from datetime import date, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator.demo import (
    OPENING_HOURS,
    _skip_dst_gaps,
    PRODUCT_COLUMNS,
    SALES_COLUMNS,
    TRUTH_COLUMNS,
    DemoShop,
    generate_demo,
    holiday_calendar,
    write_demo_csvs,
)

END = date(2025, 12, 31)
START = END - timedelta(days=759)
MONEY = re.compile(r"^\d+\.\d{2}$")
TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")
CUSTOMER = re.compile(r"^C\d{5,}$")


@pytest.fixture(scope="module")
def shop() -> DemoShop:
    return generate_demo(7, START, END)


@pytest.fixture(scope="module")
def csv_dir(shop: DemoShop, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("demo")
    write_demo_csvs(shop, folder)
    return folder


@pytest.fixture(scope="module")
def products_csv(csv_dir: Path) -> pd.DataFrame:
    return pd.read_csv(csv_dir / "products.csv", dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def sales_csv(csv_dir: Path) -> pd.DataFrame:
    return pd.read_csv(csv_dir / "sales.csv", dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def sales(shop: DemoShop) -> pd.DataFrame:
    s = shop.sales.copy()
    s["day"] = s["sale_ts"].dt.normalize()
    s["revenue"] = s["quantity"] * s["unit_price"]
    return s


@pytest.fixture(scope="module")
def daily_units(sales: pd.DataFrame) -> pd.DataFrame:
    days = pd.date_range(START, END, freq="D")
    return (
        sales.groupby(["day", "sku"])["quantity"].sum().unstack(fill_value=0)
        .reindex(days, fill_value=0)
    )


def _same_weekday_median(series: pd.Series, day: pd.Timestamp) -> float:
    around = [day + pd.Timedelta(weeks=k) for k in (-4, -3, -2, -1, 1, 2, 3, 4)]
    around = [a for a in around if a in series.index]
    return float(np.median(series.loc[around]))


# ----------------------------------------------------------------- reproducibility

def test_same_seed_gives_byte_identical_csvs(shop: DemoShop, csv_dir: Path, tmp_path: Path) -> None:
    again = write_demo_csvs(generate_demo(7, START, END), tmp_path)
    for path in again:
        assert path.read_bytes() == (csv_dir / path.name).read_bytes(), path.name


def test_different_seed_gives_different_shop(shop: DemoShop) -> None:
    other = generate_demo(8, START, END)
    assert not other.sales.equals(shop.sales)
    assert not other.products.equals(shop.products)
    assert not other.truth.equals(shop.truth)


def test_write_returns_the_three_paths(csv_dir: Path, tmp_path: Path) -> None:
    small = generate_demo(1, date(2024, 1, 1), date(2024, 3, 31), n_products=20, orders_per_day=15)
    paths = write_demo_csvs(small, tmp_path / "nested" / "out")
    assert [p.name for p in paths] == ["products.csv", "sales.csv", "demo_truth.csv"]
    assert all(p.is_file() for p in paths)


# ----------------------------------------------------------------- products.csv

def test_products_csv_format(products_csv: pd.DataFrame, csv_dir: Path) -> None:
    with open(csv_dir / "products.csv", newline="") as fh:
        assert next(csv.reader(fh)) == PRODUCT_COLUMNS
    p = products_csv
    assert len(p) == 300
    assert p["sku"].is_unique and p["name"].is_unique
    assert p["sku"].str.len().max() <= 50 and p["name"].str.len().max() <= 100
    assert (p["sku"].str.len() > 0).all() and (p["name"].str.len() > 0).all()
    assert p["price"].str.match(MONEY).all()
    assert (p["cost"].str.match(MONEY) | (p["cost"] == "")).all()
    assert p["stock_quantity"].str.fullmatch(r"\d+").all()
    assert p["low_stock_threshold"].str.fullmatch(r"\d+").all()
    assert (p["low_stock_threshold"].astype(int) >= 1).all()


def test_catalogue_realism(shop: DemoShop) -> None:
    p = shop.products
    unknown = p["cost"].isna()
    assert 0.01 <= unknown.mean() <= 0.06
    assert (p["category"].isna() == unknown).all()
    assert p["category"].dropna().nunique() == 8
    known = p[~unknown]
    margin = 1 - known["cost"] / known["price"]
    assert margin.between(0.15 - 1e-9, 0.60 + 1e-9).all()
    assert (p["price"] > 0).all()
    assert p["price"].min() < 1.0 < 10.0 < p["price"].max()
    stock = p["stock_quantity"]
    low = stock < p["low_stock_threshold"]
    assert 0.02 <= low.mean() <= 0.35
    assert (stock == 0).any() and (stock > 0).mean() > 0.8


# ----------------------------------------------------------------- sales.csv

def test_sales_csv_format(sales_csv: pd.DataFrame, products_csv: pd.DataFrame, csv_dir: Path) -> None:
    with open(csv_dir / "sales.csv", newline="") as fh:
        assert next(csv.reader(fh)) == SALES_COLUMNS
    s = sales_csv
    assert s["sale_ts"].str.match(TS).all()
    assert s["quantity"].str.fullmatch(r"[1-9]\d*").all()
    assert s["unit_price"].str.match(MONEY).all()
    assert (s["customer_id"].str.match(CUSTOMER) | (s["customer_id"] == "")).all()
    assert s["sku"].isin(set(products_csv["sku"])).all()
    ts = pd.to_datetime(s["sale_ts"], format="%Y-%m-%dT%H:%M:%S")
    assert ts.min() >= pd.Timestamp(START)
    assert ts.max() < pd.Timestamp(END + timedelta(days=1))


def test_rows_of_a_sale_are_grouped_and_consistent(sales_csv: pd.DataFrame) -> None:
    s = sales_csv
    starts = s["sale_id"].ne(s["sale_id"].shift())
    assert starts.sum() == s["sale_id"].nunique(), "rows of one sale must be contiguous"
    per_sale = s.groupby("sale_id").agg(
        ts=("sale_ts", "nunique"), cust=("customer_id", "nunique"), lines=("sku", "size"),
        skus=("sku", "nunique"),
    )
    assert (per_sale["ts"] == 1).all() and (per_sale["cust"] == 1).all()
    assert (per_sale["lines"] == per_sale["skus"]).all()
    assert per_sale["lines"].between(1, 6).all()
    assert per_sale["lines"].nunique() == 6
    first_ts = s.loc[starts, "sale_ts"]
    assert first_ts.is_monotonic_increasing, "sale ids follow time"


def test_quantities_and_anonymous_share(sales: pd.DataFrame) -> None:
    assert (sales["quantity"] > 0).all()
    assert sales["quantity"].between(1, 3).mean() > 0.9
    per_sale = sales.drop_duplicates("sale_id")
    assert 0.30 <= per_sale["customer_id"].isna().mean() <= 0.40


def test_timestamps_within_opening_hours(sales: pd.DataFrame) -> None:
    per_sale = sales.drop_duplicates("sale_id")
    ts = per_sale["sale_ts"]
    minute = ts.dt.hour * 60 + ts.dt.minute
    md = ts.dt.strftime("%m-%d")
    short = md.isin(["12-24", "12-31"])
    kind = np.where(short, "short", np.where(ts.dt.day_of_week == 5, "saturday",
                                             np.where(ts.dt.day_of_week == 6, "sunday", "weekday")))
    opens = pd.Series(kind, index=ts.index).map({k: v[0] for k, v in OPENING_HOURS.items()})
    closes = pd.Series(kind, index=ts.index).map({k: v[1] for k, v in OPENING_HOURS.items()})
    assert ((minute >= opens) & (minute < closes)).all()
    hourly = ts.dt.hour.value_counts()
    assert hourly.idxmax() not in (8, 19), "trade peaks inside the day, not at the edges"
    assert not md.isin(["12-25", "01-01"]).any(), "closed on Christmas Day and New Year's Day"


def test_prices_change_over_time_and_promotions_discount(shop: DemoShop, sales: pd.DataFrame) -> None:
    current = shop.products.set_index("sku")["price"]
    rel = sales["unit_price"] / sales["sku"].map(current)
    assert (rel <= 1.0 + 1e-9).mean() > 0.999
    assert 0.03 < (rel < 0.999).mean() < 0.6
    discounted = sales[rel <= 0.9]
    assert discounted["sku"].nunique() >= 20
    distinct = sales.groupby("sku")["unit_price"].nunique()
    assert (distinct >= 2).mean() > 0.3


def test_promotions_are_temporary_discounts_with_uplift(sales: pd.DataFrame, daily_units: pd.DataFrame) -> None:
    price = sales.groupby(["sku", "day"])["unit_price"].min()
    dips, uplift = 0, []
    for sku, col in price.groupby(level="sku"):
        col = col.droplevel("sku")
        run = col.ne(col.shift()).cumsum()
        runs = pd.DataFrame({
            "price": col.groupby(run).first(),
            "first": col.index.to_series().groupby(run.to_numpy()).min().to_numpy(),
            "last": col.index.to_series().groupby(run.to_numpy()).max().to_numpy(),
        })
        for i in range(1, len(runs) - 1):
            cur, prev, nxt = runs.iloc[i], runs.iloc[i - 1], runs.iloc[i + 1]
            length = (cur["last"] - cur["first"]).days + 1
            if cur["price"] <= 0.92 * prev["price"] and cur["price"] <= 0.92 * nxt["price"] and 5 <= length <= 15:
                dips += 1
                during = daily_units.loc[cur["first"]:cur["last"], sku].mean()
                before = daily_units.loc[cur["first"] - pd.Timedelta(days=35):cur["first"] - pd.Timedelta(days=7), sku].mean()
                if before > 0:
                    uplift.append(during / before)
    assert dips >= 15, "temporary discounts"
    assert np.median(uplift) > 1.3, "promotions lift demand"


# ----------------------------------------------------------------- demand patterns

def test_weekend_above_weekdays(sales: pd.DataFrame) -> None:
    daily = sales.groupby("day")["revenue"].sum()
    weekend = daily[daily.index.day_of_week >= 5].mean()
    weekday = daily[daily.index.day_of_week < 5].mean()
    assert weekend > 1.15 * weekday


def test_december_above_yearly_mean(sales: pd.DataFrame) -> None:
    days = pd.date_range("2024-01-01", "2024-12-31", freq="D")
    daily = sales.groupby("day")["revenue"].sum().reindex(days, fill_value=0)
    assert daily[daily.index.month == 12].mean() > 1.1 * daily.mean()


def test_recurring_holidays(sales: pd.DataFrame) -> None:
    daily = sales.groupby("day")["revenue"].sum()
    for year in (2024, 2025):
        bf = [d for d in holiday_calendar(date(year, 11, 1), date(year, 11, 30)).itertuples()
              if d.name == "Black Friday"][0].date
        fridays = [pd.Timestamp(bf) - pd.Timedelta(weeks=k) for k in (2, 3, 4, 5)]
        assert daily[pd.Timestamp(bf)] > 1.5 * daily.reindex(fridays).median()
    cal = holiday_calendar(START, END)
    assert set(cal.loc[cal["closed"], "name"]) == {"Christmas Day (closed)", "New Year's Day (closed)"}


def test_intermittent_and_top_sellers(daily_units: pd.DataFrame) -> None:
    zero_share = {}
    for sku in daily_units.columns:
        sold = daily_units[sku]
        active = sold.loc[sold.ne(0).idxmax(): sold[::-1].ne(0).idxmax()]
        zero_share[sku] = (active == 0).mean()
    zs = pd.Series(zero_share)
    assert (zs > 0.5).sum() >= 30, "slow intermittent sellers"
    assert (zs < 0.1).sum() >= 10, "regular sellers"
    avg = daily_units.mean().sort_values(ascending=False)
    assert avg.iloc[0] > 10 * avg.median(), "long-tailed popularity"


def test_launches_discontinuations_and_stockouts(shop: DemoShop, daily_units: pd.DataFrame) -> None:
    sold = daily_units.ne(0)
    first = sold.idxmax()
    last = sold[::-1].idxmax()
    assert (first > pd.Timestamp(START) + pd.Timedelta(days=60)).sum() >= 5, "launches"
    assert (last < pd.Timestamp(END) - pd.Timedelta(days=60)).sum() >= 5, "discontinued"
    stock = shop.products.set_index("sku")["stock_quantity"]
    recent = daily_units.iloc[-40:-12].sum()
    last_days = daily_units.iloc[-2:].sum()
    out_now = [s for s in stock.index[stock == 0] if recent[s] >= 5 and last_days[s] == 0]
    assert len(out_now) >= 2, "selling products that are out of stock today stopped selling"
    assert (last_days[stock.index[stock == 0]] == 0).all()
    # a regular seller that sells nothing for a week or more and then sells again
    found = 0
    for sku in daily_units.columns:
        col = daily_units[sku].loc[first[sku]:last[sku]]
        if col.mean() < 1.5:
            continue
        runs = col.eq(0).astype(int).groupby(col.ne(0).cumsum()).sum()
        found += int(runs.max() >= 7)
    assert found >= 3


def test_customers_return(sales: pd.DataFrame) -> None:
    per_sale = sales.drop_duplicates("sale_id").dropna(subset=["customer_id"])
    counts = per_sale["customer_id"].value_counts()
    assert (counts >= 2).sum() > 1000, "returning customers"
    assert (counts >= 50).sum() >= 10, "very loyal customers"
    assert 0.3 < (counts == 1).mean() < 0.8, "many one-off customers"
    first_seen = per_sale.groupby("customer_id")["day"].min()
    late = first_seen > pd.Timestamp(END) - pd.Timedelta(days=90)
    assert late.sum() > 200, "new customers keep appearing"


# ----------------------------------------------------------------- ground truth

def test_truth_format(shop: DemoShop, csv_dir: Path) -> None:
    with open(csv_dir / "demo_truth.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == TRUTH_COLUMNS
    t = shop.truth
    assert 8 <= len(t) <= 15
    assert set(t["kind"]) <= {"spike", "drop", "outage", "stock_shrinkage"}
    assert {"spike", "drop", "outage", "stock_shrinkage"} <= set(t["kind"])
    expected_dir = t["kind"].map({"spike": "up", "drop": "down", "outage": "down", "stock_shrinkage": "down"})
    assert (t["direction"] == expected_dir).all()
    skus = set(shop.products["sku"])
    assert t["series_id"].map(lambda s: s == "TOTAL" or s in skus).all()
    assert (t["series_id"] == "TOTAL").any() and (t["series_id"] != "TOTAL").any()
    up = t["direction"] == "up"
    assert (t.loc[up, "magnitude"] >= 3).all() and (t.loc[~up, "magnitude"] <= 0.3).all()
    assert (t.loc[up, "magnitude"] <= 8).all() and (t.loc[~up, "magnitude"] > 0).all()
    dates = pd.to_datetime(t["date"].map(str))
    assert (dates >= pd.Timestamp(START) + pd.Timedelta(days=60)).all()
    assert (dates <= pd.Timestamp(END)).all()
    sales_days = dates[t["kind"] != "stock_shrinkage"].sort_values()
    assert sales_days.diff().dropna().min() >= pd.Timedelta(days=14), "spread out"
    for row in rows[1:]:
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", row[0]) and MONEY.match(row[4])


@pytest.mark.parametrize("seed", [7, 21, 99])
def test_planted_anomalies_are_visible(seed: int, shop: DemoShop) -> None:
    demo = shop if seed == 7 else generate_demo(seed, START, END)
    s = demo.sales
    day = s["sale_ts"].dt.normalize()
    days = pd.date_range(START, END, freq="D")
    total = s.groupby(day)["quantity"].sum().reindex(days, fill_value=0)
    per_sku = s.groupby([day, s["sku"]])["quantity"].sum()
    checked = 0
    for row in demo.truth.itertuples():
        if row.kind == "stock_shrinkage":
            continue
        d = pd.Timestamp(row.date)
        if row.series_id == "TOTAL":
            series = total
        else:
            series = per_sku.xs(row.series_id, level="sku").reindex(days, fill_value=0)
        med = max(_same_weekday_median(series, d), 1.0)
        if row.direction == "up":
            assert series[d] > 2.0 * med, (row.series_id, row.kind, row.date)
        else:
            assert series[d] < 0.5 * med, (row.series_id, row.kind, row.date)
        checked += 1
    assert checked >= 8
    assert ((demo.truth["series_id"] == "TOTAL") & (demo.truth["kind"] == "spike")).any()


def test_total_spike_is_well_above_the_same_weekday(shop: DemoShop, sales: pd.DataFrame) -> None:
    days = pd.date_range(START, END, freq="D")
    revenue = sales.groupby("day")["revenue"].sum().reindex(days, fill_value=0)
    spikes = shop.truth[(shop.truth["series_id"] == "TOTAL") & (shop.truth["kind"] == "spike")]
    assert len(spikes) >= 1
    for row in spikes.itertuples():
        d = pd.Timestamp(row.date)
        assert revenue[d] > 2.0 * _same_weekday_median(revenue, d)


def test_stock_shrinkage_is_not_in_sales(shop: DemoShop, daily_units: pd.DataFrame) -> None:
    shrink = shop.truth[shop.truth["kind"] == "stock_shrinkage"]
    assert len(shrink) == 1
    row = shrink.iloc[0]
    assert pd.Timestamp(row["date"]) >= pd.Timestamp(END) - pd.Timedelta(days=7)
    sku = row["series_id"]
    assert (shop.truth["series_id"] == sku).sum() == 1
    assert daily_units[sku].iloc[-60:].sum() > 0, "a product that is still selling"
    stock = int(shop.products.set_index("sku").loc[sku, "stock_quantity"])
    lost, before = map(int, re.match(r"(\d+) of (\d+) units", row["note"]).groups())
    assert stock == before - lost and 0 < row["magnitude"] < 1


# ----------------------------------------------------------------- properties

@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    start=st.dates(date(2020, 1, 1), date(2026, 12, 31)),
    length=st.integers(0, 400),
    n_products=st.integers(1, 60),
    orders=st.floats(0.5, 40.0),
    tz=st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Australia/Sydney"]),
)
def test_invariants_hold_for_any_small_shop(seed, start, length, n_products, orders, tz) -> None:
    end = start + timedelta(days=length)
    demo = generate_demo(seed, start, end, n_products=n_products, orders_per_day=orders, tz=tz)
    p, s, t = demo.products, demo.sales, demo.truth
    assert list(p.columns) == PRODUCT_COLUMNS and list(s.columns) == SALES_COLUMNS
    assert list(t.columns) == TRUTH_COLUMNS
    assert len(p) == n_products and p["sku"].is_unique and p["name"].is_unique
    assert (p["stock_quantity"] >= 0).all() and (p["low_stock_threshold"] >= 1).all()
    assert np.allclose(p["price"] * 100, np.rint(p["price"] * 100))
    if len(s):
        assert (s["quantity"] > 0).all()
        assert s["sku"].isin(set(p["sku"])).all()
        assert s["sale_ts"].min() >= pd.Timestamp(start)
        assert s["sale_ts"].max() < pd.Timestamp(end + timedelta(days=1))
        assert np.allclose(s["unit_price"] * 100, np.rint(s["unit_price"] * 100))
        assert (s["unit_price"] > 0).all()
        assert not s.duplicated(["sale_id", "sku"]).any()
    if len(t):
        assert pd.to_datetime(t["date"].map(str)).min() >= pd.Timestamp(start + timedelta(days=60))


def test_local_times_skipped_by_dst_move_past_the_gap() -> None:
    days = pd.date_range("2024-03-30", "2024-04-01", freq="D")
    ts = np.array(["2024-03-30T02:30:00", "2024-03-31T02:30:00", "2024-03-31T10:00:00"], dtype="datetime64[s]")
    moved = _skip_dst_gaps(ts, np.array([0, 1, 1]), days, ZoneInfo("Europe/Berlin"))
    assert moved.astype(str).tolist() == ["2024-03-30T02:30:00", "2024-03-31T03:30:00", "2024-03-31T10:00:00"]
    assert (_skip_dst_gaps(ts, np.array([0, 1, 1]), days, ZoneInfo("UTC")) == ts).all()


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        generate_demo(1, date(2024, 2, 1), date(2024, 1, 1))
    with pytest.raises(ValueError):
        generate_demo(1, date(2024, 1, 1), date(2024, 2, 1), n_products=0)
    with pytest.raises(ValueError):
        generate_demo(1, date(2024, 1, 1), date(2024, 2, 1), orders_per_day=0)
    with pytest.raises(Exception):
        generate_demo(1, date(2024, 1, 1), date(2024, 2, 1), tz="Not/AZone")
