"""Every product of the catalogue gets a forecast or a recorded reason: skus below the models'
history thresholds get their recent rate or their category's profile, with whole-unit bands that
hold what they claim."""

from __future__ import annotations

from datetime import date, timedelta

import duckdb
import numpy as np
import pandas as pd
import pytest

from salesflow.forecast import FORECAST_COLUMNS, TOTAL
from salesflow.forecast_fallback import (
    CATEGORY_PROFILE,
    COVERAGE_COLUMNS,
    RECENT_RATE,
    fallback_forecast,
)

AS_OF = date(2025, 3, 3)
SUNDAY = 6


def _sales(sku: str, days, units) -> pd.DataFrame:
    return pd.DataFrame({"sale_date": list(days), "sku": sku, "units": list(units)})


def _bakery(rng, n_days: int = 200) -> pd.DataFrame:
    """Five bakery skus selling every day but Sunday (closed), at different rates."""
    days = pd.date_range(end=pd.Timestamp(AS_OF), periods=n_days, freq="D")
    frames = []
    for k, rate in enumerate((0.3, 0.5, 0.8, 1.2, 2.0)):
        units = rng.poisson(rate, n_days) * (days.dayofweek != SUNDAY)
        frames.append(_sales(f"BAK-{k + 1}", days.date, units))
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def shop():
    rng = np.random.default_rng(5)
    bakery = _bakery(rng)
    few = _sales("FEW-3", [AS_OF - timedelta(days=d) for d in (70, 33, 4)], [2, 1, 3])
    old = _sales("OLD-1", [AS_OF - timedelta(days=d) for d in (260, 240, 200)], [1, 1, 2])
    gone = _sales("GONE-1", [AS_OF - timedelta(days=d) for d in (30, 10)], [1, 1])
    product_daily = pd.concat([bakery, few, old, gone], ignore_index=True)
    product_daily = product_daily[product_daily["units"] > 0].reset_index(drop=True)
    catalogue = pd.DataFrame({
        "sku": ["BAK-1", "BAK-2", "BAK-3", "BAK-4", "BAK-5", "FEW-3", "NEW-BAK", "ORPHAN", "OLD-1"],
        "category": ["Bakery"] * 5 + ["Bakery", "Bakery", None, "Bakery"],
    })
    modelled = pd.DataFrame({"series_id": [TOTAL, "BAK-1", "BAK-2", "BAK-3", "BAK-4", "BAK-5"],
                             "model": ["ETS", "TSB", "TSB", "ETS", "ETS", "ETS"]})
    fc, cov = fallback_forecast(product_daily, catalogue, modelled, AS_OF, 28)
    return product_daily, catalogue, fc, cov.set_index("series_id")


def _rows(fc, sku):
    return fc[fc["series_id"] == sku].reset_index(drop=True)


def test_every_catalogue_sku_and_every_modelled_series_has_one_coverage_row(shop):
    _, catalogue, fc, cov = shop
    assert list(cov.reset_index()[COVERAGE_COLUMNS].columns) == COVERAGE_COLUMNS and len(cov.columns) == 7
    assert set(catalogue["sku"]) | {TOTAL, "GONE-1"} == set(cov.index) and cov.index.is_unique
    assert cov.loc["BAK-3", "status"] == "modelled" and cov.loc["BAK-3", "method"] == "ETS"
    assert cov.loc[TOTAL, "status"] == "modelled"
    assert list(fc.columns) == FORECAST_COLUMNS
    # only the fallbacks are forecast here, 28 days each
    assert fc.groupby("series_id").size().to_dict() == {"FEW-3": 28, "NEW-BAK": 28, "OLD-1": 28}


def test_a_catalogue_sku_with_three_sales_gets_its_recent_rate_and_a_reason(shop):
    _, _, fc, cov = shop
    row = cov.loc["FEW-3"]
    assert (row["status"], row["method"]) == ("fallback", RECENT_RATE)
    assert row["sale_days"] == 3 and row["history_days"] == 71 and row["last_sale"] == AS_OF - timedelta(days=4)
    assert "rarely sold: 3 selling days" in row["reason"] and "6 units in its last 71 days" in row["reason"]
    f = _rows(fc, "FEW-3")
    assert (f["model"] == RECENT_RATE).all()
    assert f["ds"].tolist() == [AS_OF + timedelta(days=k) for k in range(1, 29)]
    # 6 units in 71 days, spread over a week whose Sundays sell nothing (the bakery's shape)
    assert f["yhat"].sum() == pytest.approx(28 * 6 / 71, rel=0.35)
    assert (f.loc[pd.to_datetime(f["ds"]).dt.dayofweek == SUNDAY, "yhat"] < 0.01).all()
    # whole units, ordered; a sale on any open day is inside the 95% band
    for col in ("yhat_p50", "yhat_lo_80", "yhat_lo_95"):
        assert (f[col] == np.round(f[col])).all()
    assert (f["yhat_lo_95"] <= f["yhat_lo_80"]).all() and (f["yhat_lo_80"] <= f["yhat"]).all()
    assert (f["yhat"] <= f["yhat_hi_80"]).all() and (f["yhat_hi_80"] <= f["yhat_hi_95"]).all()
    weekdays = f[pd.to_datetime(f["ds"]).dt.dayofweek != SUNDAY]
    assert (weekdays["yhat_hi_95"] >= 1).all()


def test_a_never_sold_sku_of_a_category_gets_the_category_profile(shop):
    _, _, fc, cov = shop
    row = cov.loc["NEW-BAK"]
    assert (row["status"], row["method"]) == ("fallback", CATEGORY_PROFILE)
    assert row["sale_days"] == 0 and pd.isna(row["last_sale"]) and "never sold" in row["reason"]
    f = _rows(fc, "NEW-BAK")
    dow = pd.to_datetime(f["ds"]).dt.dayofweek
    # the category's weekday shape: its Sundays are closed
    assert (f.loc[dow == SUNDAY, "yhat"] < 0.05).all() and (f.loc[dow == SUNDAY, "yhat_hi_95"] < 1).all()
    # the median of the selling bakery skus (0.3 to 2 units a day, and FEW-3's 0.1) on open days,
    # with a band as wide as the spread of their rates
    open_days = f[dow != SUNDAY]
    assert 0.3 < open_days["yhat"].mean() < 1.0
    assert (open_days["yhat_hi_95"] >= 3).all() and (open_days["yhat_lo_80"] == 0).all()


def test_skus_without_a_rate_or_no_longer_listed_say_why_and_get_no_forecast(shop):
    _, _, fc, cov = shop
    assert cov.loc["ORPHAN", "status"] == "none" and "no category" in cov.loc["ORPHAN", "reason"]
    gone = cov.loc["GONE-1"]
    assert gone["status"] == "none" and "not in the catalogue" in gone["reason"]
    assert gone["sale_days"] == 2
    assert not set(fc["series_id"]) & {"ORPHAN", "GONE-1"}
    # a listed sku that stopped selling: a rate of zero over its recent window, the band still
    # allowing a sale, the last sale named
    old = cov.loc["OLD-1"]
    assert old["method"] == RECENT_RATE and "inactive: no sale since" in old["reason"]
    assert old["last_sale"] == AS_OF - timedelta(days=200)
    f = _rows(fc, "OLD-1")
    assert f["yhat"].sum() < 0.5 and (f["yhat_p50"] == 0).all()


def test_fallback_bands_hold_what_they_claim_for_new_and_never_sold_skus():
    """Skus whose true rates vary (Gamma distributed, like a category's): the new ones forecast
    from their own few weeks, the never sold ones from their category; their bands are scored
    on 28 simulated days each."""
    rng = np.random.default_rng(11)
    rates = rng.gamma(2.0, 0.3, 400)
    hist_days = rng.integers(15, 50, 400)
    frames, future = [], {}
    for k, (rate, n) in enumerate(zip(rates, hist_days)):
        sku = f"SKU-{k:03d}"
        days = [AS_OF - timedelta(days=d) for d in range(n)]
        frames.append(_sales(sku, days, rng.poisson(rate, n)))
        future[sku] = rng.poisson(rate, 28)
    # 100 skus never sold yet, from the same category
    for k, rate in enumerate(rng.gamma(2.0, 0.3, 100)):
        future[f"NEW-{k:03d}"] = rng.poisson(rate, 28)
    product_daily = pd.concat(frames, ignore_index=True)
    product_daily = product_daily[product_daily["units"] > 0]
    catalogue = pd.DataFrame({"sku": sorted(future), "category": "Shelf"})
    fc, cov = fallback_forecast(product_daily, catalogue, [], AS_OF, 28)
    assert set(cov["status"]) == {"fallback"}
    fc = fc.sort_values(["series_id", "ds"])
    actual = np.concatenate([future[s] for s in fc["series_id"].drop_duplicates()])
    for prefix in ("SKU", "NEW"):
        mine = fc["series_id"].str.startswith(prefix).to_numpy()
        y = actual[mine]
        f = fc[mine]
        for level in (80, 95):
            held = np.mean((y >= f[f"yhat_lo_{level}"]) & (y <= f[f"yhat_hi_{level}"]))
            assert level / 100 <= held <= level / 100 + 0.15, (prefix, level, held)
        # the mean is unbiased enough to plan stock with
        assert f["yhat"].sum() == pytest.approx(y.sum(), rel=0.15), prefix


# -- through Dagster ---------------------------------------------------------------------------

def test_the_forecast_asset_writes_fallbacks_and_coverage_for_the_catalogue(tmp_path):
    from tests.test_forecast_cadence import DAY1, materialize_forecasts, shop_lines, write_warehouse

    daily, product_daily = shop_lines(end=DAY1)
    few = pd.DataFrame({"sale_date": [DAY1 - timedelta(days=d) for d in (50, 20, 3)], "sku": "FEW-3",
                        "orders": 1, "units": [1, 2, 1], "revenue": [2.5, 5.0, 2.5]})
    product_daily = pd.concat([product_daily, few], ignore_index=True)
    catalogue = pd.DataFrame({
        "sku": ["WEEKLY-1", "WEEKLY-2", "WEEKLY-3", "WEEKLY-4", "SPARSE-1", "FEW-3", "NEW-1", "LOOSE-1"],
        "category": ["Shelf"] * 7 + [None]})
    path = tmp_path / "w.duckdb"
    write_warehouse(path, daily, product_daily, catalogue)
    meta = materialize_forecasts(path, DAY1)["ml/sales_forecast"]
    con = duckdb.connect(str(path), read_only=True)
    models = dict(con.execute("SELECT DISTINCT series_id, model FROM ml.sales_forecast WHERE as_of = ?",
                              [DAY1]).fetchall())
    assert models.get("FEW-3") == RECENT_RATE and models.get("NEW-1") == CATEGORY_PROFILE, models
    cov = con.execute("SELECT series_id, status, method, reason, sale_days FROM ml.forecast_coverage "
                      "WHERE as_of = ?", [DAY1]).df().set_index("series_id")
    con.close()
    assert set(cov.index) == set(catalogue["sku"]) | {TOTAL}
    assert (cov.loc["FEW-3", "method"], cov.loc["FEW-3", "sale_days"]) == (RECENT_RATE, 3)
    assert models["FEW-3"] == RECENT_RATE and models["NEW-1"] == CATEGORY_PROFILE
    assert "LOOSE-1" not in models and "no category" in cov.loc["LOOSE-1", "reason"]
    assert cov.loc["WEEKLY-1", "status"] == "modelled" and cov.loc["WEEKLY-1", "method"] == models["WEEKLY-1"]
    assert meta["coverage"] == {"fallback CategoryProfile": 1, "fallback RecentRate": 1, "modelled": 6,
                                "none": 1}
