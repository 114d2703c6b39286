"""The daily forecast keeps each series' chosen model for a week, refits it on every new day,
and chooses again when the week is over, when past sales change, or for a new series."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from salesflow import forecast
from salesflow.forecast_cadence import (
    DUE,
    FORCED,
    HISTORY_CHANGED,
    NO_SELECTION,
    RESELECT_ENV,
    STORED_COLUMNS,
    UNREADABLE,
    daily_forecast,
    fingerprints,
    plan,
    reselect_days,
)

DAY1 = date(2025, 3, 3)
WEEKLY = np.array([0.6, 0.7, 0.8, 0.9, 1.2, 2.0, 0.8])
START = date(2024, 7, 1)
END = DAY1 + timedelta(days=8)


def shop_lines(end: date = END, seed: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(daily, product_daily)`` as the marts hold them: four weekly sellers and a sparse one
    from ``START`` to ``end``."""
    rng = np.random.default_rng(seed)
    days = pd.date_range(START, end, freq="D")
    frames = []
    for k, level in enumerate((12.0, 7.0, 4.0, 2.5)):
        units = rng.poisson(level * WEEKLY[days.dayofweek])
        frames.append(pd.DataFrame({"sale_date": days, "sku": f"WEEKLY-{k + 1}", "units": units}))
    sparse = (rng.random(len(days)) < 0.15) * rng.integers(1, 4, len(days))
    frames.append(pd.DataFrame({"sale_date": days, "sku": "SPARSE-1", "units": sparse}))
    p = pd.concat(frames, ignore_index=True)
    p = p[p["units"] > 0].reset_index(drop=True)
    p["orders"] = p["units"].clip(upper=3)
    p["revenue"] = (p["units"] * 2.5).round(2)
    p["sale_date"] = p["sale_date"].dt.date
    d = p.groupby("sale_date").agg(orders=("orders", "sum"), units=("units", "sum"),
                                   revenue=("revenue", "sum")).reset_index()
    return d, p[["sale_date", "sku", "orders", "units", "revenue"]]


def series_of(daily, product_daily, as_of):
    return forecast.build_series(daily, product_daily, as_of)


@pytest.fixture(scope="module")
def lines():
    return shop_lines()


@pytest.fixture(scope="module")
def day1(lines):
    daily, product_daily = lines
    series = series_of(daily, product_daily, DAY1)
    return series, daily_forecast(series, DAY1, None, 28)


def test_the_first_day_selects_every_series_and_stores_what_it_saw(day1):
    series, (fc, sel, bt, p) = day1
    ids = set(series["unique_id"])
    assert set(p.reselect) == ids and set(p.reselect.values()) == {NO_SELECTION}
    assert list(sel.columns) == STORED_COLUMNS and set(sel["series_id"]) == ids
    assert sel["fingerprint"].str.len().min() > 0 and (sel["horizon"] == 28).all()
    assert set(bt["series_id"]) == ids and bt["chosen"].sum() == len(ids)
    assert set(fc["series_id"]) == ids and len(fc) == 28 * len(ids)


def test_the_next_day_reuses_the_selection_and_refits_on_the_new_day(lines, day1):
    daily, product_daily = lines
    _, (fc1, sel1, _, _) = day1
    day2 = DAY1 + timedelta(days=1)
    series = series_of(daily, product_daily, day2)
    fc, sel, bt, p = daily_forecast(series, day2, sel1, 28)
    assert not p.reselect and len(p.reuse) == len(sel1)
    assert sel.empty and bt.empty  # no backtest, nothing new to store
    assert p.summary()["reused"] == len(sel1) and p.summary()["reselected"] == 0
    # the chosen models, refitted on the history up to day 2
    assert set(fc["series_id"]) == set(sel1["series_id"])
    assert fc["as_of"].eq(day2).all() and fc["ds"].min() == day2 + timedelta(days=1)
    assert (fc.drop_duplicates("series_id").set_index("series_id")["model"]
            == sel1.set_index("series_id")["model"]).all()
    expected = forecast.predict(series, day2, sel1, 28)
    pd.testing.assert_frame_equal(fc.reset_index(drop=True), expected.reset_index(drop=True))
    # a refit, not yesterday's numbers shifted
    same_day = fc1.merge(fc, on=["series_id", "ds"], suffixes=("_1", "_2"))
    assert len(same_day) and not np.allclose(same_day["yhat_1"], same_day["yhat_2"])


def test_a_week_later_every_series_is_selected_again(lines, day1):
    daily, product_daily = lines
    _, (_, sel1, _, _) = day1
    for offset, expect in ((6, set()), (7, {DUE})):
        day = DAY1 + timedelta(days=offset)
        p = plan(series_of(daily, product_daily, day), day, sel1, every_days=7, horizon=28)
        assert set(p.reselect.values()) == expect, offset
    day8 = DAY1 + timedelta(days=7)
    fc, sel, bt, p = daily_forecast(series_of(daily, product_daily, day8), day8, sel1, 28)
    assert set(sel["series_id"]) == set(sel1["series_id"]) and sel["selected_as_of"].eq(day8).all()
    assert bt["as_of"].eq(day8).all() and bt["chosen"].sum() == len(sel1)
    # a series chosen off-cycle (on day 3) is chosen again with the others on their weekly day
    day3 = DAY1 + timedelta(days=2)
    off = sel1.copy()
    hit = off["series_id"] == "WEEKLY-1"
    off.loc[hit, "selected_as_of"] = day3
    off.loc[hit, "fingerprint"] = fingerprints(series_of(daily, product_daily, day3), day3)["WEEKLY-1"]
    assert not plan(series_of(daily, product_daily, day8 - timedelta(days=1)), day8 - timedelta(days=1),
                    off, every_days=7, horizon=28).reselect
    p8 = plan(series_of(daily, product_daily, day8), day8, off, every_days=7, horizon=28)
    assert p8.reselect == {s: DUE for s in sel1["series_id"]} and p8.reuse.empty


def test_past_sales_imported_after_the_selection_reselect_only_that_series(lines, day1):
    daily, product_daily = lines
    _, (_, sel1, _, _) = day1
    day2 = DAY1 + timedelta(days=1)
    back = DAY1 - timedelta(days=30)
    changed = product_daily.copy()
    hit = (changed["sku"] == "WEEKLY-2") & (changed["sale_date"] == back)
    assert hit.any()
    changed.loc[hit, "units"] += 40
    fc, sel, bt, p = daily_forecast(series_of(daily, changed, day2), day2, sel1, 28)
    assert p.reselect == {"WEEKLY-2": HISTORY_CHANGED}
    assert list(sel["series_id"]) == ["WEEKLY-2"] and set(bt["series_id"]) == {"WEEKLY-2"}
    assert len(p.reuse) == len(sel1) - 1
    assert set(fc["series_id"]) == set(sel1["series_id"])
    # a sale on the new day itself is not a change of the history the selection saw
    newday = product_daily.copy()
    newday.loc[(newday["sku"] == "WEEKLY-2") & (newday["sale_date"] == day2), "units"] += 40
    assert not plan(series_of(daily, newday, day2), day2, sel1, every_days=7, horizon=28).reselect


def test_a_new_series_is_selected_and_the_others_reused(lines, day1):
    daily, product_daily = lines
    _, (_, sel1, _, _) = day1
    day2 = DAY1 + timedelta(days=1)
    series = series_of(daily, product_daily, day2)
    p = plan(series, day2, sel1[sel1["series_id"] != "SPARSE-1"], every_days=7, horizon=28)
    assert p.reselect == {"SPARSE-1": NO_SELECTION}
    forced = plan(series, day2, sel1, every_days=7, horizon=28, force=True)
    assert set(forced.reselect.values()) == {FORCED} and forced.reuse.empty


def test_a_stored_selection_this_version_cannot_read_is_made_again(lines, day1):
    daily, product_daily = lines
    _, (_, sel1, _, _) = day1
    day2 = DAY1 + timedelta(days=1)
    fc, sel, _, p = daily_forecast(series_of(daily, product_daily, day2), day2,
                                   sel1.assign(state='{"name": "ETS"}'), 28)
    assert set(p.reselect.values()) == {UNREADABLE} and len(sel) == len(sel1)
    assert set(fc["series_id"]) == set(sel1["series_id"])
    # readable, but naming a model this version does not have
    gone = sel1.assign(state=sel1["state"].str.replace('"members": [', '"members": ["Retired", ',
                                                       regex=False))
    fc, sel, _, p = daily_forecast(series_of(daily, product_daily, day2), day2, gone, 28)
    assert set(p.reselect.values()) == {UNREADABLE} and set(sel["reason"]) == {UNREADABLE}
    assert set(fc["series_id"]) == set(sel1["series_id"]) and len(sel) == len(sel1)


def test_the_cadence_comes_from_the_run_config_or_the_environment():
    assert reselect_days(environ={}) == 7
    assert reselect_days(environ={RESELECT_ENV: " 3 "}) == 3
    assert reselect_days(2, environ={RESELECT_ENV: "3"}) == 2
    for bad in ("weekly", "0"):
        with pytest.raises(ValueError, match=RESELECT_ENV if bad == "weekly" else "at least 1"):
            reselect_days(environ={RESELECT_ENV: bad})


# -- through Dagster ---------------------------------------------------------------------------

def write_warehouse(path: Path, daily: pd.DataFrame, product_daily: pd.DataFrame,
                    catalogue: pd.DataFrame | None = None) -> None:
    """A warehouse holding the two sales marts (and the catalogue: ``sku``, ``category``)."""
    from salesflow.warehouse import connect, registered

    cat = catalogue if catalogue is not None else pd.DataFrame(
        {"sku": sorted(product_daily["sku"].unique()), "category": "Shelf"})
    products = pd.DataFrame({"id": range(1, len(cat) + 1), "sku": cat["sku"], "name": cat["sku"],
                             "price": 2.5, "stock_quantity": 10, "low_stock_threshold": 2})
    with connect(path) as con, registered(con, _d=daily, _p=product_daily, _products=products,
                                          _inv=cat):
        con.execute("INSERT INTO marts.daily_sales BY NAME SELECT * FROM _d")
        con.execute("INSERT INTO marts.product_daily_sales BY NAME SELECT * FROM _p")
        con.execute("INSERT INTO raw.products BY NAME SELECT * FROM _products")
        con.execute("INSERT INTO raw.inventory BY NAME SELECT sku, category FROM _inv "
                    "WHERE category IS NOT NULL")


def materialize_forecasts(path: Path, day: date, **config):
    import dagster as dg

    from assets.ml import forecasts
    from resources import WarehouseResource

    result = dg.materialize([forecasts], partition_key=day.isoformat(),
                            run_config={"ops": {"forecasts": {"config": config}}},
                            resources={"warehouse": WarehouseResource(database=str(path))})
    assert result.success
    meta = {}
    for m in result.asset_materializations_for_node("forecasts"):
        meta["/".join(m.asset_key.path)] = {k: v.value for k, v in m.metadata.items()}
    return meta


def _table(path: Path, sql: str, params=()) -> pd.DataFrame:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql, list(params)).df()
    finally:
        con.close()


def test_the_daily_asset_reuses_a_selection_for_a_week_and_reselects_what_changed(tmp_path, lines,
                                                                                  monkeypatch):
    monkeypatch.delenv(RESELECT_ENV, raising=False)
    daily, product_daily = lines
    path = tmp_path / "w.duckdb"
    write_warehouse(path, daily, product_daily)
    day2, day3, day8 = (DAY1 + timedelta(days=k) for k in (1, 2, 7))

    meta1 = materialize_forecasts(path, DAY1)
    backtest1 = _table(path, "SELECT * FROM ml.forecast_backtest ORDER BY series_id, model")
    meta2 = materialize_forecasts(path, day2)
    # the day after a selection: no backtest runs, the stored one stays as it was
    pd.testing.assert_frame_equal(
        _table(path, "SELECT * FROM ml.forecast_backtest ORDER BY series_id, model"), backtest1)
    sel1 = meta1["ml/sales_forecast"]["selection"]
    ids = set(_table(path, "SELECT DISTINCT series_id FROM ml.forecast_selection")["series_id"])
    assert sel1["reselected"] == len(ids) and sel1["reused"] == 0 and sel1["why"] == {NO_SELECTION: len(ids)}
    sel2 = meta2["ml/sales_forecast"]["selection"]
    assert sel2["reselected"] == 0 and sel2["reused"] == len(ids)
    assert meta2["ml/forecast_backtest"]["dagster/row_count"] == len(backtest1)
    assert meta2["ml/forecast_backtest"]["rows_written_today"] == 0
    fc2 = _table(path, "SELECT * FROM ml.sales_forecast WHERE as_of = ?", [day2])
    assert ids <= set(fc2["series_id"]) and fc2["ds"].min().date() == day2 + timedelta(days=1)

    # an import of past sales: one sku's day a month back gets more units
    con = duckdb.connect(str(path))
    con.execute("UPDATE marts.product_daily_sales SET units = units + 40 "
                "WHERE sku = 'WEEKLY-3' AND sale_date = ?", [DAY1 - timedelta(days=30)])
    con.close()
    meta3 = materialize_forecasts(path, day3)
    sel3 = meta3["ml/sales_forecast"]["selection"]
    assert sel3["why"] == {HISTORY_CHANGED: 1} and sel3["reused"] == len(ids) - 1
    made = _table(path, "SELECT series_id, selected_as_of FROM ml.forecast_selection "
                        "WHERE selected_as_of = ?", [day3])
    assert list(made["series_id"]) == ["WEEKLY-3"]
    bt = _table(path, "SELECT as_of, series_id FROM ml.forecast_backtest")
    assert set(bt[bt["as_of"].dt.date == day3]["series_id"]) == {"WEEKLY-3"}
    assert len(bt[bt["as_of"].dt.date == DAY1]) == len(backtest1)
    assert meta3["ml/forecast_backtest"]["selections_made_on"] == [str(DAY1), str(day3)]

    meta8 = materialize_forecasts(path, day8)
    sel8 = meta8["ml/sales_forecast"]["selection"]
    # a week after the first selection the whole panel is chosen again, WEEKLY-3 (chosen on
    # day 3) with it
    assert sel8["why"] == {DUE: len(ids)} and sel8["reused"] == 0
    assert meta8["ml/forecast_backtest"]["selections_made_on"] == [str(day8)]

    # a run asking for it selects again; a cadence of one day does the same the day after
    assert materialize_forecasts(path, day8, reselect=True)["ml/sales_forecast"]["selection"][
        "why"] == {FORCED: len(ids)}
    monkeypatch.setenv(RESELECT_ENV, "1")
    meta9 = materialize_forecasts(path, day8 + timedelta(days=1))
    assert meta9["ml/sales_forecast"]["selection"]["reselected"] == len(ids)


def test_a_rerun_of_a_selection_day_writes_the_same_rows(tmp_path, lines, monkeypatch):
    """A run killed after the forecast step and run again reuses the day's own selection: the
    forecast, the backtest and the selection are what the first run wrote, row for row."""
    monkeypatch.delenv(RESELECT_ENV, raising=False)
    daily, product_daily = lines
    path = tmp_path / "w.duckdb"
    write_warehouse(path, daily, product_daily)
    tables = ("ml.sales_forecast", "ml.forecast_backtest", "ml.forecast_selection", "ml.forecast_coverage")

    def dump():
        return {t: _table(path, f"SELECT * FROM {t} ORDER BY ALL") for t in tables}

    materialize_forecasts(path, DAY1)
    first = dump()
    again = materialize_forecasts(path, DAY1)["ml/sales_forecast"]["selection"]
    assert again["reselected"] == 0 and again["reused"] == len(first["ml.forecast_selection"])
    for table, frame in dump().items():
        pd.testing.assert_frame_equal(frame, first[table], obj=table)
