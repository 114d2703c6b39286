"""Forecasting: series building from the marts, model selection, bands and the contract shape."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from salesflow.forecast import (
    BACKTEST_COLUMNS,
    FORECAST_COLUMNS,
    INTERMITTENT_MODELS,
    TOTAL,
    backtest_summary_markdown,
    build_series,
    forecast,
    forecast_chart_png,
    series_unit,
)

AS_OF = date(2025, 6, 30)
WEEKLY = np.array([0.6, 0.7, 0.8, 0.9, 1.2, 2.0, 0.8])  # Monday .. Sunday


def _days(n: int, end: date = AS_OF) -> pd.DatetimeIndex:
    return pd.date_range(end=pd.Timestamp(end), periods=n, freq="D")


def _weekly(uid: str, n: int, level: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ds = _days(n)
    lam = level * WEEKLY[ds.dayofweek]
    return pd.DataFrame({"unique_id": uid, "ds": ds, "y": rng.poisson(lam).astype(float)})


def _sparse(uid: str, n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.12) * rng.integers(1, 4, n)
    return pd.DataFrame({"unique_id": uid, "ds": _days(n), "y": y.astype(float)})


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    return pd.concat(
        [
            _weekly(TOTAL, 500, 400.0, 1),
            _weekly("WEEKLY-1", 500, 30.0, 2),
            _sparse("SPARSE-1", 500, 3),
            _weekly("SHORT-1", 40, 30.0, 4),
            _weekly("LONG-1", 400, 30.0, 4),
        ],
        ignore_index=True,
    )


@pytest.fixture(scope="module")
def result(panel):
    return forecast(panel, AS_OF, 28)


# -- build_series ----------------------------------------------------------------------------
def test_build_series_from_marts_fills_zero_days_and_keeps_skus_with_history():
    daily = pd.DataFrame({
        "sale_date": [date(2025, 1, 1) + timedelta(days=i) for i in range(100)],
        "orders": 3,
        "units": 5,
        "revenue": [Decimal("0.00")] * 5 + [Decimal("12.50")] * 95,
    })
    rows = []
    for i in range(0, 100, 2):
        rows.append((date(2025, 1, 1) + timedelta(days=i), "OLD", 1, 2, Decimal("3.00")))
    rows += [(date(2025, 4, 1) + timedelta(days=i), "NEW", 1, 1, Decimal("1.00")) for i in range(9)]
    rows += [(date(2025, 1, 2) + timedelta(days=i), "GONE", 1, 1, Decimal("1.00")) for i in range(9)]
    rows.append((date(2025, 4, 11), "FUTURE", 1, 9, Decimal("9.00")))
    product_daily = pd.DataFrame(rows, columns=["sale_date", "sku", "orders", "units", "revenue"])

    s = build_series(daily, product_daily, date(2025, 4, 10), min_history=56, min_sale_days=8,
                     inactive_days=60)

    assert list(s.columns) == ["unique_id", "ds", "y"]
    assert set(s["unique_id"]) == {TOTAL, "OLD"}  # NEW too young, GONE inactive, FUTURE after as_of
    total = s[s["unique_id"] == TOTAL]
    assert total["ds"].min() == pd.Timestamp("2025-01-06")  # from the first day with a sale
    assert total["ds"].max() == pd.Timestamp("2025-04-10")
    assert total["y"].dtype == float and total["y"].eq(12.5).all()
    old = s[s["unique_id"] == "OLD"].set_index("ds")["y"]
    assert len(old) == 100 and old.index.is_monotonic_increasing
    assert old[pd.Timestamp("2025-01-01")] == 2.0 and old[pd.Timestamp("2025-01-02")] == 0.0
    assert series_unit(TOTAL) == "revenue" and series_unit("OLD") == "units"

    detail = build_series(daily, product_daily, date(2025, 4, 10), detail=True)
    assert list(detail.columns) == ["unique_id", "ds", "y", "orders", "revenue"]
    assert detail.loc[detail["unique_id"] == "OLD", "revenue"].max() == 3.0


# -- forecast contract -----------------------------------------------------------------------
def test_forecast_frame_has_the_contract_shape_and_ordered_non_negative_bands(result, panel):
    fc, bt = result
    assert list(fc.columns) == FORECAST_COLUMNS
    assert list(bt.columns) == BACKTEST_COLUMNS
    assert set(fc["series_id"]) == set(panel["unique_id"])
    horizon = [AS_OF + timedelta(days=i) for i in range(1, 29)]
    for _, g in fc.groupby("series_id"):
        assert list(g["ds"]) == horizon
        assert (g["as_of"] == AS_OF).all()
    values = fc[["yhat_lo_95", "yhat_lo_80", "yhat", "yhat_hi_80", "yhat_hi_95"]].to_numpy()
    assert np.isfinite(values).all()
    assert (values >= 0).all()
    assert (np.diff(values, axis=1) >= -1e-9).all()
    # the median lies in the 80% band
    assert np.isfinite(fc["yhat_p50"]).all()
    assert (fc["yhat_p50"] >= fc["yhat_lo_80"] - 1e-9).all()
    assert (fc["yhat_p50"] <= fc["yhat_hi_80"] + 1e-9).all()
    # every series has exactly one chosen backtest row, naming the model of its forecast
    chosen = bt[bt["chosen"]].set_index("series_id")
    assert chosen.index.is_unique and set(chosen.index) == set(fc["series_id"])
    used = fc.groupby("series_id")["model"].first()
    assert (chosen.loc[used.index, "model"] == used).all()
    assert chosen["reason"].str.len().gt(20).all()


def test_backtest_scores_the_candidates_with_coverage(result):
    _, bt = result
    weekly = bt[bt["series_id"] == "WEEKLY-1"]
    assert {"SeasonalNaive", "ETS"} <= set(weekly["model"])
    assert weekly["mase"].gt(0).all() and weekly["smape"].between(0, 2).all()
    assert weekly["coverage_80"].between(0, 1).all()
    assert (weekly["coverage_95"] >= weekly["coverage_80"]).all()
    # ETS on a clean weekly Poisson series beats the weekly seasonal naive forecast
    mase = weekly.set_index("model")["mase"]
    assert mase["ETS"] < mase["SeasonalNaive"]


def test_an_intermittent_seller_gets_an_intermittent_model(result):
    fc, bt = result
    row = bt[(bt["series_id"] == "SPARSE-1") & bt["chosen"]].iloc[0]
    assert row["model"] in INTERMITTENT_MODELS or row["model"].startswith("Ensemble(Croston")
    assert row["reason"].startswith("intermittent")
    # weekly seasonal naive is only a yardstick for a sparse seller
    sn = bt[(bt["series_id"] == "SPARSE-1") & (bt["model"] == "SeasonalNaive")].iloc[0]
    assert not sn["chosen"] and "reference only" in sn["reason"]
    sparse = fc[fc["series_id"] == "SPARSE-1"]
    # a rate (about 0.12 * 2 units a day), spread over the week like the other skus' sales
    assert 0.1 < sparse["yhat"].mean() < 0.6 and sparse["yhat"].gt(0).all()


def test_a_strongly_weekly_series_gets_a_seasonal_model_with_its_weekly_shape(result):
    fc, bt = result
    row = bt[(bt["series_id"] == "WEEKLY-1") & bt["chosen"]].iloc[0]
    assert row["model"] in ("ETS", "SeasonalNaive", "Theta", "MSTL") or row["model"].startswith(
        "Ensemble(ETS")
    assert row["reason"].startswith("smooth")
    g = fc[fc["series_id"] == "WEEKLY-1"].assign(dow=lambda f: pd.to_datetime(f["ds"]).dt.dayofweek)
    by_day = g.groupby("dow")["yhat"].mean()
    assert by_day[5] > 1.8 * by_day[0]  # Saturday peak, Monday low, as in the history
    assert 20 < g["yhat"].mean() < 40


def test_short_history_falls_back_with_a_reason_and_wider_bands(result):
    fc, bt = result
    short = bt[(bt["series_id"] == "SHORT-1") & bt["chosen"]].iloc[0]
    assert short["model"] in ("WindowAverage", "SeasonalWindowAverage")
    assert short["reason"].startswith("short history (40 days")

    def rel_width(uid: str) -> float:
        g = fc[fc["series_id"] == uid]
        return float(((g["yhat_hi_80"] - g["yhat_lo_80"]) / g["yhat"]).mean())

    assert rel_width("SHORT-1") > 1.2 * rel_width("LONG-1")


def test_forecast_is_deterministic_and_ignores_data_after_as_of(panel, result):
    fc, bt = result
    later = _weekly("WEEKLY-1", 30, 300.0, 9).assign(ds=_days(30, AS_OF + timedelta(days=30)))
    again_fc, again_bt = forecast(pd.concat([panel, later], ignore_index=True), AS_OF, 28)
    pd.testing.assert_frame_equal(fc, again_fc)
    pd.testing.assert_frame_equal(bt, again_bt)


def test_horizon_is_configurable_and_empty_input_gives_empty_frames():
    s = _weekly("A", 200, 10.0, 5)
    fc, bt = forecast(s, AS_OF, horizon=7)
    assert len(fc) == 7 and fc["ds"].iloc[-1] == AS_OF + timedelta(days=7)
    fc0, bt0 = forecast(s.iloc[0:0], AS_OF, 28)
    assert fc0.empty and bt0.empty
    assert list(fc0.columns) == FORECAST_COLUMNS and list(bt0.columns) == BACKTEST_COLUMNS


# -- median, RMSSE and count bands ------------------------------------------------------------
def _one_day_in(uid: str, every: int, n: int, seed: int) -> pd.DataFrame:
    """Sells 1 or 2 units on about one day in ``every``."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 1.0 / every) * rng.integers(1, 3, n)
    return pd.DataFrame({"unique_id": uid, "ds": _days(n), "y": y.astype(float)})


def test_the_median_of_a_right_skewed_seller_is_below_its_mean_and_inside_the_band(result):
    fc, bt = result
    sparse = fc[fc["series_id"] == "SPARSE-1"]
    assert (sparse["yhat_p50"] <= sparse["yhat"] + 1e-12).all()
    assert (sparse["yhat_p50"] < sparse["yhat"]).any()
    assert (sparse["yhat_lo_80"] <= sparse["yhat_p50"]).all()
    assert (sparse["yhat_p50"] <= sparse["yhat_hi_80"]).all()
    # a smooth series' median is near its mean
    weekly = fc[fc["series_id"] == "WEEKLY-1"]
    assert (np.abs(weekly["yhat_p50"] - weekly["yhat"]) < 0.25 * weekly["yhat"]).all()


def test_a_product_selling_on_one_day_in_five_has_a_median_of_zero_and_a_positive_mean():
    fc, bt = forecast(_one_day_in("FIFTH", 5, 400, 7), AS_OF, 28)
    assert (fc["yhat_p50"] == 0).all()
    assert (fc["yhat"] > 0.1).all() and 0.2 < fc["yhat"].mean() < 0.5
    # the backtest's MASE scores that median, its RMSSE the mean
    chosen = bt[bt["chosen"]].iloc[0]
    assert np.isfinite(chosen["mase"]) and np.isfinite(chosen["rmsse"])


def test_rmsse_and_median_mase_on_a_hand_example():
    from salesflow.forecast import ForecastConfig, _Profile, _score, _snaive_rms

    hist = np.array([1, 2, 3, 4, 5, 6, 7, 3, 2, 3, 4, 5, 6, 9], float)
    # weekly differences 2, 0, 0, 0, 0, 0, 2: root mean square sqrt(8 / 7)
    assert _snaive_rms(hist) == pytest.approx(np.sqrt(8 / 7))
    prof = _Profile("X", 100, 1.0, 0.0, "smooth", 2, scale=2.0, scale2=2.0, floor=1.0)
    y = np.array([[1.0, 2.0], [3.0, 4.0]])
    f = np.array([[1.0, 1.0], [1.0, 1.0]])
    s = _score(y, f, prof, ForecastConfig(count_bands=False, median_choice=False,
                                          median_debias=False))
    # per window: sqrt((0 + 1) / 2) and sqrt((4 + 9) / 2), averaged, over the scale 2
    assert s.rmsse == pytest.approx((np.sqrt(0.5) + np.sqrt(6.5)) / 2 / 2.0)
    assert s.mase_mean == pytest.approx((0.5 + 2.5) / 2 / 2.0)
    # the median of window k comes from the other window's errors only: scaled errors
    # (y - f) / sqrt(f + 1) are {0, 1/sqrt2} and {2/sqrt2, 3/sqrt2}; window 0 gets the median of
    # window 1's, 2.5/sqrt2, so yhat_p50 = 1 + 2.5 = 3.5, clipped to its 80% band (whose top is
    # 1 + 3 = 4); window 1 gets 0.5/sqrt2, so 1.5
    med = np.array([[3.5, 3.5], [1.5, 1.5]])
    assert s.mase == pytest.approx(np.mean(np.mean(np.abs(y - med), axis=1)) / 2.0)
    # the errors' bias left out of the median (each window's errors have a median equal to
    # their mean: no skew), the median is the mean forecast, 1
    debiased = _score(y, f, prof, ForecastConfig(count_bands=False, median_choice=False))
    assert debiased.mase == pytest.approx(np.mean(np.abs(y - 1.0)) / 2.0) == 0.75
    # with the choice of median, the mean itself scores better here (MASE 0.75 against 1.0)
    chosen = _score(y, f, prof, ForecastConfig(count_bands=False, median_debias=False))
    assert chosen.plain_median and chosen.mase == pytest.approx(s.mase_mean) == 0.75


def test_count_bands_are_whole_numbers_that_hold_the_zero_days():
    # Poisson at 0.3 a day: P(0) = 0.74, P(<= 1) = 0.96. Every band must hold the zero days (a
    # continuous lower bound of 0.05 units leaves them out) and the 95% band must reach 1 unit.
    rng = np.random.default_rng(11)
    s = pd.DataFrame({"unique_id": "P03", "ds": _days(400),
                      "y": rng.poisson(0.3, 400).astype(float)})
    fc, bt = forecast(s, AS_OF, 28)
    assert (fc["yhat_lo_80"] == 0).all() and (fc["yhat_lo_95"] == 0).all()
    assert (fc["yhat_hi_95"] >= 1).mean() > 0.75
    for col in ("yhat_p50", "yhat_lo_80", "yhat_hi_80", "yhat_lo_95", "yhat_hi_95"):
        v = fc[col].to_numpy()
        # whole numbers, or the mean where the whole-number bound would cut it off
        assert ((v == np.round(v)) | (v == fc["yhat"].to_numpy())).all(), col
    # calibrated on the backtest (each window from the others): at least the level
    chosen = bt[bt["chosen"]].iloc[0]
    assert chosen["coverage_80"] >= 0.8 and chosen["coverage_95"] >= 0.95
    # revenue (TOTAL) keeps continuous bands
    fc_t, _ = forecast(s.assign(unique_id=TOTAL, y=s["y"] * 10.5), AS_OF, 28)
    assert (fc_t["yhat_hi_80"] != np.round(fc_t["yhat_hi_80"])).any()


# -- presentation ----------------------------------------------------------------------------
def test_summary_markdown_and_chart(result, panel):
    fc, bt = result
    md = backtest_summary_markdown(bt)
    assert md.startswith("| chosen model | series |")
    assert "| **all** | 5 |" in md
    assert "**TOTAL** (revenue;" in md and "Why: smooth" in md
    png = forecast_chart_png(panel, fc, TOTAL)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_salesflow_ml_modules_do_not_import_dagster():
    root = Path(__file__).resolve().parent.parent / "salesflow"
    for name in ("forecast.py", "anomalies.py", "datasets.py"):
        text = (root / name).read_text()
        assert "import dagster" not in text and "from dagster" not in text


def test_frames_insert_into_the_warehouse_contract_tables(result, tmp_path):
    import duckdb

    from salesflow.warehouse import ensure_schema

    fc, bt = result
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        ensure_schema(con)
        con.register("fc", fc)
        con.register("bt", bt)
        # by name, as assets/ml.py inserts: every column of the frames must exist in the table
        con.execute("INSERT INTO ml.sales_forecast BY NAME SELECT * FROM fc")
        con.execute("INSERT INTO ml.forecast_backtest BY NAME SELECT * FROM bt")
        n, first, days = con.execute(
            "SELECT count(*), min(ds), count(DISTINCT ds) FROM ml.sales_forecast").fetchone()
        assert (n, first, days) == (len(fc), AS_OF + timedelta(days=1), 28)
        short = con.execute("SELECT coverage_80 FROM ml.forecast_backtest "
                            "WHERE series_id = 'SHORT-1' AND chosen").fetchone()
        assert short == (None,)  # no backtest window, no coverage: NULL
    finally:
        con.close()


def test_detail_needs_the_order_counts():
    daily = pd.DataFrame({"sale_date": [AS_OF], "revenue": [1.0]})
    product_daily = pd.DataFrame({"sale_date": [AS_OF], "sku": ["A"], "units": [1]})
    with pytest.raises(ValueError, match="orders"):
        build_series(daily, product_daily, AS_OF, detail=True)
    assert len(build_series(daily, product_daily, AS_OF, min_history=1, min_sale_days=1)) == 2


# -- selection and prediction on separate days -----------------------------------------------
def test_predict_from_a_stored_selection_equals_forecast_and_refits_on_later_days(panel, result,
                                                                                  monkeypatch):
    import json

    import salesflow.forecast as forecast_module
    from salesflow.forecast import SELECTION_COLUMNS, predict, select

    fc, bt = result
    selection, bt_sel = select(panel, AS_OF, 28)
    assert list(selection.columns) == SELECTION_COLUMNS
    assert selection["series_id"].is_unique and set(selection["series_id"]) == set(fc["series_id"])
    pd.testing.assert_frame_equal(bt_sel, bt)
    # the same day: exactly the forecast
    pd.testing.assert_frame_equal(predict(panel, AS_OF, selection, 28), fc)

    # three days later, the weekly series sells three times as much: the stored choice is
    # refitted on the new days, without a backtest
    later = AS_OF + timedelta(days=3)
    new_days = _weekly("WEEKLY-1", 3, 90.0, 12).assign(ds=_days(3, later))
    grown = pd.concat([panel, new_days], ignore_index=True)

    def no_backtest(*args, **kwargs):
        raise AssertionError("predict must not backtest")

    monkeypatch.setattr(forecast_module, "_backtests", no_backtest)
    fc3 = predict(grown, later, selection[selection["series_id"] != "LONG-1"], 28)
    assert set(fc3["series_id"]) == set(fc["series_id"]) - {"LONG-1"}  # no selection row, no rows
    assert fc3["ds"].min() == later + timedelta(days=1) and (fc3["as_of"] == later).all()
    # each series keeps its selected model
    chosen = selection.set_index("series_id")["model"]
    used = fc3.groupby("series_id")["model"].first()
    assert (used == chosen.loc[used.index]).all()
    state = json.loads(selection.set_index("series_id").loc["WEEKLY-1", "state"])
    assert state["members"] and "q" in state
    # the new days are in the fit: the level moved up from the day-D forecast
    before = fc[fc["series_id"] == "WEEKLY-1"]["yhat"].mean()
    after = fc3[fc3["series_id"] == "WEEKLY-1"]["yhat"].mean()
    assert after > 1.1 * before


# -- yearly season, earlier years' windows and ensembles --------------------------------------
def _december_peak(uid: str, end: date, years: int = 3, seed: int = 21) -> pd.DataFrame:
    """A sku selling about 10 units a day, 30 from 25 November to 24 December every year."""
    rng = np.random.default_rng(seed)
    ds = _days(365 * years, end)
    peak = ((ds.month == 11) & (ds.day >= 25)) | ((ds.month == 12) & (ds.day <= 24))
    lam = np.where(peak, 30.0, 10.0) * WEEKLY[ds.dayofweek] / WEEKLY.mean()
    return pd.DataFrame({"unique_id": uid, "ds": ds, "y": rng.poisson(lam).astype(float)})


def test_a_december_peak_is_backtested_on_last_december_and_forecast_by_a_yearly_model():
    from salesflow.forecast import ForecastConfig

    as_of = date(2025, 11, 30)
    s = _december_peak("GIFT", as_of)
    # not only the biggest series: every series with two years of history gets yearly models
    fc, bt = forecast(s, as_of, 28, config=ForecastConfig(heavy_top=0))
    row = bt[bt["chosen"]].iloc[0]
    # the four windows of August to November and the same weeks of last year
    assert "4 backtest windows and 1 on the same weeks of earlier years" in row["reason"]
    assert "Yearly" in row["model"] or "MSTL" in row["model"]
    assert {"YearlyES", "ETS"} <= set(bt["model"])
    scores = bt.set_index("model")["mase"]
    assert scores[row["model"]] < scores["ETS"]  # ETS cannot see last December
    hist = s.set_index("ds")["y"]
    november = hist[pd.Timestamp("2025-11-01"):pd.Timestamp("2025-11-24")].mean()
    days = pd.to_datetime(fc["ds"])
    peak = fc.loc[days.between(pd.Timestamp("2025-12-03"), pd.Timestamp("2025-12-22")), "yhat"]
    assert peak.mean() > 2.0 * november  # the forecast rises with the season


def test_a_yearly_rise_seen_the_year_before_is_not_an_unstable_level_shift():
    as_of = date(2025, 12, 20)
    fc, bt = forecast(_december_peak("GIFT", as_of), as_of, 28)
    row = bt[bt["chosen"]].iloc[0]
    assert row["reason"].startswith("smooth"), row["reason"]


def test_ensembles_are_the_backtest_s_best_candidates_and_chosen_only_when_they_score_best(result):
    _, bt = result
    for uid, g in bt[~bt["reason"].str.startswith("short")].groupby("series_id"):
        singles = g[~g["model"].str.startswith("Ensemble(")
                    & ~g["reason"].str.startswith("reference only")]
        ens = g[g["model"].str.startswith("Ensemble(")]
        assert len(ens) >= 1, uid
        mase = singles.set_index("model")["mase"]
        ranked = np.sort(mase.to_numpy())
        sizes = {len(label.split("+")) for label in ens["model"]}
        assert sizes == set(range(2, min(3, len(mase)) + 1)), (uid, sizes)
        for label in ens["model"]:
            members = label[len("Ensemble("):-1].split("+")
            # the mean of the best two (three) single candidates of the backtest (ties aside)
            assert len(set(members)) == len(members) and set(members) <= set(mase.index)
            assert mase[members].max() <= ranked[len(members) - 1] + 1e-9, (uid, label, mase)
        chosen = g[g["chosen"]].iloc[0]
        competing = g[~g["reason"].str.startswith("reference only")]
        assert chosen["mase"] <= competing["mase"].min() + 1e-9
