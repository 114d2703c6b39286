"""Sales anomalies on real shops' series with planted events, the demo shop's truth, and speed.

    .venv/bin/python benchmarks/anomalies.py [--quick] [--replicates 5] [--seed 7]
                                             [--series 2000] [--rounds 3] [--no-speed]

Real series, loaded as a user's data reaches the assets (sale lines -> ``salesflow.datasets.
daily_frames`` -> ``salesflow.forecast.build_series(detail=True)``, with the assets' history
thresholds):

- Online Retail (``/work/shared/data/online_retail``), through ``emulator.online_retail``'s
  canonical sales (a repeated line kept once, a sale dated by its earliest line), per product;
- Superstore per sub-category and per category; CDNOW (one sku ``CD``, the whole shop);

each at two grains: the sale lines as they are, and one line per product per day (the day's
units and revenue of a product as one sale: orders are 1 on every selling day, as in a shop
that records daily totals).

Planting (fixed seed; the truth is written to ``benchmarks/.work/anomaly-truth-<dataset>.csv``):
events in the last 90 days of the product series, on the shop's trading days only: one-day
spikes of 2-4x and drops to 25-35% of the day's sales (orders, units and revenue alike),
stock-out runs of 2-5 trading days at zero, and shifts of +-40% lasting 7-21 trading days (each
day's orders or units thinned or grown binomially, so that they stay counts). Up to four events
per series, apart enough that the level settles in between; the shop's ``TOTAL`` moves with
them. ``--replicates`` plants as many independent sets (seed, seed + 1, ...).

Where an event is plantable (from the series' 180 days before the window, shop trading days,
on what the scorer reads: orders, or units where orders are mostly 1):

- one-day spikes and drops: the series sells on >= 95% of the trading days, at least 10 a day,
  and its day-to-day robust spread (of log day / the trailing 28-day weekday median) is at most
  0.25, so that a 2x day stands almost three spreads out;
- stock-outs: sells on >= 90% of the trading days;
- shifts: sells on >= 90% of the trading days and the robust spread of its weekly totals (log of
  a 7-day total over the mean of the 4 weeks before) is at most 0.15, so that a 40% week stands
  more than two spreads out.

Every other product that sells on >= 30% of trading days is "the sparse rest": events of the
kinds it does not qualify for are planted there too and scored separately.

Scoring: ``detect_sales_anomalies`` over the whole history, which scores each day from the days
before it exactly as the daily runs do (checked: a daily replay of the window, ``lookback_days=7``
each day, reports the same alert keys on CDNOW and Superstore per category). A planted event is
found by a row of its series and direction dated on its day (one-day events) or from 3 days
before its first day to its last day (runs, shifts). Precision counts the product rows in the
window; ``TOTAL`` rows are reported aside (the shop moves with its products). The false-alarm
rate: the same series with nothing planted, rows per 1,000 series-days of the window.

The demo shop (``emulator.demo``, seed 42 as ``make run`` builds it): its planted truth as
``benchmarks/ml.py`` scored it, whole history and stock write-offs.

Speed: ``--series`` synthetic retail-like series of 1,095 days, anomaly scoring of the whole
history and a daily run (last 7 days), each in a fresh child process, median of ``--rounds``.

Results: ``benchmarks/.work/anomalies-latest.md`` (paste-ready) and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
import warnings
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import ROOT, median_run, peak_rss_mb, run_child, speed_table  # noqa: E402
from ml import synthetic_panel  # noqa: E402
from ml_data import DEMO, demo_shop, online_retail_lines  # noqa: E402

WORK = ROOT / "benchmarks" / ".work"
DATA = Path("/work/shared/data")
SUPERSTORE = DATA / "superstore" / "superstore_9994_2016-2019.csv"
CDNOW = DATA / "cdnow" / "cdnow_master.csv"
WINDOW = 90
BEFORE = 180
NAMES = {"online_retail": "Online Retail", "superstore_subcat": "Superstore, per sub-category",
         "superstore_cat": "Superstore, per category", "cdnow": "CDNOW"}
GRAINS = {"lines": "sale lines", "per_day": "one line per product per day"}
KINDS = ("spike", "drop", "stockout", "shift")


# --------------------------------------------------------------------------- data

def sale_lines(slug: str) -> pd.DataFrame:
    from salesflow.datasets import read_cdnow, read_superstore

    cache = WORK / "anomaly-data" / f"{slug}.parquet"
    if cache.exists():
        return pd.read_parquet(cache)
    if slug == "online_retail":
        lines = online_retail_lines()
    elif slug == "superstore_subcat":
        lines = read_superstore(SUPERSTORE, sku_column="Sub-Category")
    elif slug == "superstore_cat":
        lines = read_superstore(SUPERSTORE, sku_column="Category")
    else:
        lines = read_cdnow(CDNOW)
    cache.parent.mkdir(parents=True, exist_ok=True)
    lines.to_parquet(cache, index=False)
    return lines


def per_day_grain(lines: pd.DataFrame) -> pd.DataFrame:
    """One sale line per product and day: the day's units and revenue of the product."""
    day = pd.to_datetime(lines["sale_date"]).dt.normalize()
    g = lines.assign(sale_date=day).groupby(["sale_date", "sku"], as_index=False)[
        ["quantity", "revenue"]].sum()
    g["sale_id"] = g["sale_date"].dt.strftime("%Y%m%d") + "-" + g["sku"].astype(str)
    return g[["sale_date", "sale_id", "sku", "quantity", "revenue"]]


def frames(slug: str, grain: str):
    from salesflow.datasets import daily_frames

    lines = sale_lines(slug)
    if grain == "per_day":
        lines = per_day_grain(lines)
    daily, product_daily = daily_frames(lines)
    daily["sale_date"] = pd.to_datetime(daily["sale_date"])
    product_daily["sale_date"] = pd.to_datetime(product_daily["sale_date"])
    return daily, product_daily


def series_of(daily, product_daily, end):
    from salesflow.forecast import build_series

    # as the assets build them
    return build_series(daily, product_daily, end, min_history=28, min_sale_days=1, detail=True)


# --------------------------------------------------------------------------- plantability

def _robust_spread(v: np.ndarray) -> float:
    v = v[np.isfinite(v)]
    if len(v) < 10:
        return float("inf")
    return float(1.4826 * np.median(np.abs(v - np.median(v))))


def plantable(daily, product_daily, end) -> pd.DataFrame:
    """Per product: the kinds of event its history makes distinguishable (module docstring)."""
    w0 = end - pd.Timedelta(days=WINDOW - 1)
    lo = w0 - pd.Timedelta(days=BEFORE)
    trading = pd.DatetimeIndex(daily.loc[(daily["sale_date"] >= lo) & (daily["sale_date"] < w0)
                                         & (daily["orders"] > 0), "sale_date"]).sort_values()
    p = product_daily[(product_daily["sale_date"] >= lo) & (product_daily["sale_date"] < w0)]
    rows = []
    for sku, g in p.groupby("sku"):
        g = g.set_index("sale_date").reindex(trading, fill_value=0)
        selling = g["units"].to_numpy() > 0
        recent = trading >= w0 - pd.Timedelta(days=91)
        share = float(selling[recent].mean()) if recent.any() else 0.0
        orders = g["orders"].to_numpy(float)
        mostly_one = selling.any() and (orders[selling] == 1).mean() >= 0.8
        q = g["units"].to_numpy(float) if mostly_one else orders
        s = pd.Series(q, index=trading)
        dow = trading.dayofweek
        wk = s.groupby(dow).transform("median").to_numpy()
        mid = float(np.median(q)) if np.median(q) > 0 else 1.0
        med = s.rolling(28, min_periods=14).median().shift(1).to_numpy() * wk / mid
        day_spread = _robust_spread(np.log((q + 0.5) / (med + 0.5)))
        week = s.rolling(7).sum()
        prev = s.rolling(28).mean().shift(7) * 7
        week_spread = _robust_spread(np.log((week + 0.5) / (prev + 0.5)).to_numpy()[::7])
        kinds = []
        if share >= 0.95 and q.mean() >= 10 and day_spread <= 0.25:
            kinds += ["spike", "drop"]
        min_run = min_run_of(share)
        if min_run <= 5:
            kinds.append("stockout")
        if share >= 0.95 and q.mean() >= 20 and week_spread <= 0.15:
            kinds.append("shift")
        rows.append((sku, share, q.mean(), day_spread, week_spread, "orders" if not mostly_one
                     else "units", ",".join(kinds), min_run))
    return pd.DataFrame(rows, columns=["sku", "share", "mean", "day_spread", "week_spread",
                                       "scored", "kinds", "min_run"])


# --------------------------------------------------------------------------- planting

def selling_shares(daily, product_daily, open_days: pd.DatetimeIndex, skus) -> pd.DataFrame:
    """Per window day and sku: the share of the shop's trading days of the 91 days before it
    on which the sku sold (the real data, nothing planted)."""
    trading = pd.DatetimeIndex(daily.loc[daily["orders"] > 0, "sale_date"]).sort_values()
    p = product_daily[product_daily["sku"].isin(set(skus))]
    sold = (p.assign(one=1.0).pivot_table(index="sale_date", columns="sku", values="one",
                                          aggfunc="max")
            .reindex(trading).fillna(0.0))
    cal = pd.date_range(trading.min(), open_days.max())
    on = sold.reindex(cal)
    sums = on.fillna(0.0).rolling(91, min_periods=1).sum().shift(1)
    days = on.notna().astype(float).iloc[:, :1].rolling(91, min_periods=1).sum().shift(1)
    return sums.div(days.iloc[:, 0], axis=0).reindex(open_days)


def min_run_of(share: float) -> int:
    """The shortest run of empty trading days as unlikely as e^-7.5 for a product selling on
    ``share`` of them."""
    if not np.isfinite(share) or share >= 1:
        return 2
    return max(2, int(np.ceil(7.5 / -np.log(min(max(1 - share, 1e-3), 0.99)))))


def plan_events(skus_kinds: dict[str, tuple[list[str], int]], open_days: pd.DatetimeIndex,
                rng: np.random.Generator, shares: pd.DataFrame | None = None) -> pd.DataFrame:
    """Up to four events per series in the window's trading days, apart enough; a stock-out
    run as long as the product's selling share before it needs (``min_run_of``), planted only
    where that is at most 5 days."""
    rows = []
    n = len(open_days)
    for sku, (kinds, min_run) in skus_kinds.items():
        if not kinds:
            continue
        i = int(rng.integers(0, 10))
        while i < n - 2:
            kind = kinds[int(rng.integers(0, len(kinds)))]
            if kind in ("spike", "drop"):
                factor = rng.uniform(2, 4) if kind == "spike" else rng.uniform(0.25, 0.35)
                length = 1
            elif kind == "stockout":
                if shares is not None:
                    min_run = min_run_of(float(shares[sku].iloc[i]))
                if min_run > 5:
                    i += 1
                    continue
                length, factor = int(rng.integers(max(min_run, 2), 6)), 0.0
            else:
                length = int(rng.integers(7, 22))
                factor = 1.4 if rng.random() < 0.5 else 0.6
            if i + length > n:
                break
            days = open_days[i:i + length]
            direction = "up" if factor > 1 else "down"
            rows.append((sku, "shift" if kind == "shift" else kind, days[0].date(),
                         days[-1].date(), length, round(float(factor), 3), direction,
                         ";".join(d.strftime("%Y-%m-%d") for d in days)))
            i += length + int(rng.integers(10, 20)) + (14 if kind == "shift" else 0)
    return pd.DataFrame(rows, columns=["series_id", "kind", "start", "last", "days", "factor",
                                       "direction", "dates"])


def plant(daily, product_daily, events: pd.DataFrame, per_day: bool,
          rng: np.random.Generator):
    """Copies of the frames with ``events`` applied to the products and to the shop's day."""
    pdl = product_daily.copy()
    key = pd.MultiIndex.from_arrays([pdl["sku"].astype(str), pdl["sale_date"]])
    pos = {k: i for i, k in enumerate(key)}
    units = pdl["units"].to_numpy(float).copy()
    orders = pdl["orders"].to_numpy(float).copy()
    revenue = pdl["revenue"].to_numpy(float).copy()
    d_rev: dict = {}
    d_ord: dict = {}
    for ev in events.itertuples(index=False):
        for day in pd.to_datetime(ev.dates.split(";")):
            i = pos.get((ev.series_id, day))
            if i is None:
                continue
            u0, o0, r0 = units[i], orders[i], revenue[i]
            if ev.kind == "stockout":
                u1, o1 = 0.0, 0.0
            elif ev.kind == "shift":
                # thinned or grown binomially: still counts, around the factor
                base = u0 if per_day else o0
                grown = (base + rng.binomial(int(base), ev.factor - 1) if ev.factor > 1
                         else rng.binomial(int(base), ev.factor))
                f = grown / base if base > 0 else 1.0
                u1 = float(grown) if per_day else float(round(u0 * f))
                o1 = (1.0 if u1 > 0 else 0.0) if per_day else float(grown)
            else:
                u1 = max(float(round(u0 * ev.factor)), 1.0)
                o1 = 1.0 if per_day else max(float(round(o0 * ev.factor)), 1.0)
            if u1 <= 0 or o1 <= 0:
                u1 = o1 = 0.0
            r1 = r0 * (u1 / u0 if u0 > 0 else 0.0)
            units[i], orders[i], revenue[i] = u1, o1, r1
            d_rev[day] = d_rev.get(day, 0.0) + r1 - r0
            d_ord[day] = d_ord.get(day, 0.0) + (o1 - o0)
    pdl["units"], pdl["orders"], pdl["revenue"] = units, orders, revenue
    pdl = pdl[pdl["units"] > 0].reset_index(drop=True)
    dl = daily.copy()
    idx = pd.DatetimeIndex(dl["sale_date"])
    dl["revenue"] = (dl["revenue"].to_numpy(float)
                     + pd.Series(d_rev).reindex(idx).fillna(0).to_numpy())
    dl["orders"] = np.maximum(dl["orders"].to_numpy(float)
                              + pd.Series(d_ord).reindex(idx).fillna(0).to_numpy(), 0)
    return dl, pdl


# --------------------------------------------------------------------------- scoring

def match(rows: pd.DataFrame, events: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``(found per event, matching per row)``."""
    found = np.zeros(len(events), dtype=bool)
    ok = np.zeros(len(rows), dtype=bool)
    if not len(rows) or not len(events):
        return found, ok
    by_series: dict = {}
    for j, ev in enumerate(events.itertuples(index=False)):
        by_series.setdefault(ev.series_id, []).append((j, ev))
    for i, r in enumerate(rows.itertuples(index=False)):
        for j, ev in by_series.get(r.series_id, []):
            lo = ev.start if ev.kind in ("spike", "drop") else ev.start - timedelta(days=3)
            if r.direction == ev.direction and lo <= r.ds <= ev.last:
                found[j] = True
                ok[i] = True
    return found, ok


def score_rows(daily, product_daily, skus, end):
    from salesflow.anomalies import detect_sales_anomalies
    from salesflow.forecast import TOTAL

    keep = set(skus)
    pdl = product_daily[product_daily["sku"].isin(keep)]
    series = series_of(daily, pdl, end)
    rows = detect_sales_anomalies(series, end, lookback_days=None)
    if product_daily["sku"].nunique() == 1:
        # the one product is the whole shop: the shop's rows are its rows
        rows = rows.assign(series_id=rows["series_id"].replace(TOTAL, product_daily["sku"].iloc[0]))
        rows = rows.drop_duplicates(["series_id", "ds", "direction"])
    w0 = (end - pd.Timedelta(days=WINDOW - 1)).date()
    rows = rows[rows["ds"] >= w0]
    days = series[(series["ds"] >= pd.Timestamp(w0)) & (series["unique_id"] != TOTAL)]
    return rows, int(len(days))


def evaluate_real(slug: str, grain: str, replicates: int, seed: int, sparse_limit: int) -> dict:
    from salesflow.forecast import TOTAL

    daily, product_daily = frames(slug, grain)
    end = pd.Timestamp(daily["sale_date"].max())
    w0 = end - pd.Timedelta(days=WINDOW - 1)
    open_days = pd.DatetimeIndex(daily.loc[(daily["sale_date"] >= w0) & (daily["orders"] > 0),
                                           "sale_date"]).sort_values()
    plan = plantable(daily, product_daily, end)
    sellers = plan[plan["share"] >= 0.3]
    dense = sellers[sellers["kinds"] != ""]
    sparse = sellers[sellers["kinds"].str.split(",").map(len) < len(KINDS)]
    if len(sparse) > sparse_limit:
        sparse = sparse.sample(sparse_limit, random_state=seed)
    out = {"dataset": NAMES[slug], "grain": GRAINS[grain], "series": int(plan.shape[0]),
           "plantable": {k: int(dense["kinds"].str.contains(k).sum()) for k in KINDS},
           "sparse_series": int(len(sparse))}
    # nothing planted: the false-alarm rate of the same series in the window
    rows, days = score_rows(daily, product_daily, dense["sku"], end)
    sku_rows = rows[rows["series_id"] != TOTAL]
    out["clean"] = {"series_days": days, "rows": int(len(sku_rows)),
                    "per_1000": 1000 * len(sku_rows) / max(days, 1),
                    "total_rows": int((rows["series_id"] == TOTAL).sum()),
                    "kinds": sku_rows["kind"].value_counts().to_dict()}
    truth = []
    results = {"dense": [], "sparse": []}
    for rep in range(replicates):
        rng = np.random.default_rng(seed + rep)
        for part, group in (("dense", dense), ("sparse", sparse)):
            if not len(group):
                continue
            kinds = {r.sku: (r.kinds.split(","), r.min_run) if part == "dense" else
                     ([k for k in KINDS if k not in r.kinds.split(",")], 2)
                     for r in group.itertuples()}
            events = plan_events(kinds, open_days, rng,
                                 selling_shares(daily, product_daily, open_days, group["sku"]))
            if not len(events):
                continue
            dl, pdl = plant(daily, product_daily, events, grain == "per_day", rng)
            rows, days = score_rows(dl, pdl, group["sku"], end)
            sku_rows = rows[rows["series_id"] != TOTAL]
            found, ok = match(sku_rows, events)
            events = events.assign(found=found, replicate=rep, part=part, grain=grain)
            truth.append(events)
            results[part].append({"events": events, "rows": sku_rows.assign(ok=ok),
                                  "series_days": days,
                                  "total_rows": int((rows["series_id"] == TOTAL).sum())})
    for part, res in results.items():
        if not res:
            continue
        ev = pd.concat([r["events"] for r in res])
        rw = pd.concat([r["rows"] for r in res])
        per_kind = {k: f"{int(g['found'].sum())}/{len(g)}" for k, g in ev.groupby("kind")}
        matched_rows = int(rw["ok"].sum())
        out[part] = {"events": int(len(ev)), "found": int(ev["found"].sum()),
                     "recall": float(ev["found"].mean()), "rows": int(len(rw)),
                     "precision": matched_rows / max(len(rw), 1),
                     "rows_per_found_event": matched_rows / max(int(ev["found"].sum()), 1),
                     "by_kind": per_kind,
                     "false_kinds": rw.loc[~rw["ok"], "kind"].value_counts().to_dict(),
                     "total_rows": int(sum(r["total_rows"] for r in res))}
    if truth:
        t = pd.concat(truth, ignore_index=True)
        path = WORK / f"anomaly-truth-{slug}.csv"
        if path.exists() and grain != "lines":
            t = pd.concat([pd.read_csv(path), t], ignore_index=True)
        t.to_csv(path, index=False)
    return out


def daily_replay(slug: str, grain: str, seed: int) -> dict:
    """A daily run (``lookback_days=7``) on each day of the window, planted series: are its
    alert keys the whole-history run's?"""
    from salesflow.anomalies import detect_sales_anomalies

    daily, product_daily = frames(slug, grain)
    end = pd.Timestamp(daily["sale_date"].max())
    w0 = end - pd.Timedelta(days=WINDOW - 1)
    open_days = pd.DatetimeIndex(daily.loc[(daily["sale_date"] >= w0) & (daily["orders"] > 0),
                                           "sale_date"]).sort_values()
    skus = sorted(product_daily["sku"].unique())
    events = plan_events({s: (list(KINDS), 2) for s in skus}, open_days,
                         np.random.default_rng(seed))
    dl, pdl = plant(daily, product_daily, events, grain == "per_day", np.random.default_rng(seed))
    series = series_of(dl, pdl, end)
    whole = detect_sales_anomalies(series, end, lookback_days=None)
    whole_keys = {(r.series_id, r.ds, r.direction) for r in whole.itertuples()
                  if r.ds >= w0.date()}
    daily_keys = set()
    for day in pd.date_range(w0, end):
        part = series[series["ds"] <= day]
        found = detect_sales_anomalies(part, day, lookback_days=7)
        daily_keys |= {(r.series_id, r.ds, r.direction) for r in found.itertuples()
                       if r.ds >= w0.date()}
    return {"dataset": NAMES[slug], "grain": GRAINS[grain], "whole_keys": len(whole_keys),
            "daily_keys": len(daily_keys), "same": whole_keys == daily_keys,
            "only_daily": sorted(map(str, daily_keys - whole_keys))[:5],
            "only_whole": sorted(map(str, whole_keys - daily_keys))[:5]}


# --------------------------------------------------------------------------- demo shop

def stock_snapshots(shop, product_daily, days: int = 60, seed: int = 0):
    """Closing stock of the last ``days`` days, rebuilt backwards from today's stock."""
    rng = np.random.default_rng(seed)
    end = pd.Timestamp(DEMO["end"])
    dates = pd.date_range(end=end, periods=days, freq="D")
    sold = (product_daily.assign(sale_date=pd.to_datetime(product_daily["sale_date"]))
            .pivot_table(index="sale_date", columns="sku", values="units", aggfunc="sum")
            .reindex(index=dates, fill_value=0).fillna(0.0))
    lost = {}
    for t in shop.truth[shop.truth["kind"] == "stock_shrinkage"].itertuples():
        m = re.match(r"(\d+) of (\d+) units", t.note)
        lost[(t.series_id, pd.Timestamp(t.date))] = int(m.group(1))
    rows = []
    for p in shop.products.itertuples():
        stock = int(p.stock_quantity)
        units = sold[p.sku].to_numpy() if p.sku in sold.columns else np.zeros(days)
        for i in range(days - 1, -1, -1):
            rows.append((dates[i].date(), p.sku, stock, int(p.low_stock_threshold)))
            before = stock + int(units[i]) + lost.get((p.sku, dates[i]), 0)
            if i and before > 0 and rng.random() < 0.1:
                before -= int(before * rng.uniform(0.3, 0.7))  # a delivery arrived that day
            stock = before
    return pd.DataFrame(rows, columns=["snapshot_date", "sku", "stock_quantity",
                                       "low_stock_threshold"])


def evaluate_demo(seed: int) -> dict:
    from salesflow.anomalies import (SalesAnomalyConfig, detect_sales_anomalies,
                                     detect_stock_anomalies)
    from salesflow.forecast import TOTAL, build_series

    daily, product_daily, shop = demo_shop(seed)
    end = pd.Timestamp(daily["sale_date"].max())
    series = build_series(daily, product_daily, end, min_history=1, min_sale_days=1,
                          inactive_days=10**9, detail=True)
    # The demo shop closes on 25 December and 1 January: configured as closed days.
    config = SalesAnomalyConfig(closed_days=("12-25", "01-01"))
    sales = detect_sales_anomalies(series, end, lookback_days=None, config=config)
    snaps = stock_snapshots(shop, product_daily)
    stock = detect_stock_anomalies(snaps, product_daily, end, lookback_days=None)
    found = pd.concat([sales, stock], ignore_index=True)
    truth = shop.truth
    keys = set(zip(truth["series_id"], truth["date"], truth["direction"]))
    hits = set(zip(found["series_id"], found["ds"], found["direction"]))
    kinds = truth.set_index(["series_id", "date"])["kind"]

    def group(k):
        if k[0] == TOTAL:
            return "TOTAL"
        return "stock" if kinds.loc[(k[0], k[1])] == "stock_shrinkage" else "sku"

    by = {}
    for k in keys:
        g = group(k)
        n, m = by.get(g, (0, 0))
        by[g] = (n + (k in hits), m + 1)
    false = found[[k not in keys for k in zip(found["series_id"], found["ds"], found["direction"])]]
    # The generator's own stock-outs (3-18 days), launches, discontinuations, seasonal items
    # and price rises are ordinary business it does not list in its truth: the multi-day
    # events are counted aside, and precision is also given for the day rows alone.
    events = found["kind"].isin(["stockout", "level_shift"]) & found["series_id"].ne(TOTAL)
    day_hits = set(zip(found.loc[~events, "series_id"], found.loc[~events, "ds"],
                       found.loc[~events, "direction"]))
    day_false = false[~false["kind"].isin(["stockout", "level_shift"])
                      | false["series_id"].eq(TOTAL)]
    return {"dataset": f"demo shop, seed {seed}", "truth": len(keys), "found": len(keys & hits),
            "reported": len(hits), "recall": len(keys & hits) / max(1, len(keys)),
            "precision": len(keys & hits) / max(1, len(hits)),
            "day_precision": len(keys & day_hits) / max(1, len(day_hits)),
            "event_rows": found.loc[events, "kind"].value_counts().to_dict(),
            "by_kind": ", ".join(f"{g} {n}/{m}" for g, (n, m) in sorted(by.items())),
            "false": "; ".join(f"{r.series_id} {r.ds} {r.kind}" for r in day_false.itertuples())
            or "none"}


# --------------------------------------------------------------------------- speed

SPEED_STEPS = {"anomalies": "anomaly scoring, whole history",
               "anomalies_daily": "anomaly scoring, a daily run (last 7 days, two years read)"}


def speed_child(n: int, step: str) -> dict:
    from salesflow.anomalies import detect_sales_anomalies

    panel = synthetic_panel(n)
    t0 = time.perf_counter()
    found = detect_sales_anomalies(panel, date(2025, 6, 30),
                                   lookback_days=None if step == "anomalies" else 7)
    seconds = time.perf_counter() - t0
    return {"series": int(panel["unique_id"].nunique()), "rows": len(panel),
            "seconds": round(seconds, 2), "anomaly_rows": len(found),
            "kinds": found["kind"].value_counts().to_dict(), "peak_mb": round(peak_rss_mb())}


# --------------------------------------------------------------------------- report

def report(real: list[dict], replays: list[dict], demo: list[dict], speed: dict,
           command: str, replicates: int) -> str:
    lines = [f"Command: `{command}`", "",
             f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
             f"{platform.python_version()}; {replicates} planted replicate(s) per dataset", "",
             "Planted events in the last 90 days of real product series (recall: events found; "
             "precision: product rows in the window that are a planted event; rows per event "
             "found: 1.00 is one row per event):", "",
             "| dataset | grain | plantable series: spike/drop, stock-out, shift | events "
             "| recall | precision | rows per event found | found by kind | other rows "
             "| TOTAL rows |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | --- | --- | ---: |"]
    for r in real:
        d = r.get("dense")
        p = r["plantable"]
        plantable_text = f"{p['spike']}, {p['stockout']}, {p['shift']}"
        if not d:
            lines.append(f"| {r['dataset']} | {r['grain']} | {plantable_text} | 0 | – | – | – "
                         f"| – | – | – |")
            continue
        lines.append(
            f"| {r['dataset']} | {r['grain']} | {plantable_text} | {d['events']} | "
            f"{d['recall']:.2f} | {d['precision']:.2f} | {d['rows_per_found_event']:.2f} | "
            f"{', '.join(f'{k} {v}' for k, v in d['by_kind'].items())} | "
            f"{', '.join(f'{k} {v}' for k, v in d['false_kinds'].items()) or 'none'} | "
            f"{d['total_rows']} |")
    lines += ["", "The sparse rest (products selling on at least 30% of trading days that "
              "qualify for no kind; every kind planted):", "",
              "| dataset | grain | series | events | recall | precision | found by kind |",
              "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
    for r in real:
        s = r.get("sparse")
        if not s:
            continue
        lines.append(f"| {r['dataset']} | {r['grain']} | {r['sparse_series']} | {s['events']} "
                     f"| {s['recall']:.2f} | {s['precision']:.2f} | "
                     f"{', '.join(f'{k} {v}' for k, v in s['by_kind'].items())} |")
    lines += ["", "Nothing planted, the same plantable series, the last 90 days:", "",
              "| dataset | grain | series-days | product rows | per 1,000 series-days "
              "| kinds | TOTAL rows |", "| --- | --- | ---: | ---: | ---: | --- | ---: |"]
    for r in real:
        c = r["clean"]
        lines.append(f"| {r['dataset']} | {r['grain']} | {c['series_days']:,} | {c['rows']} | "
                     f"{c['per_1000']:.2f} | "
                     f"{', '.join(f'{k} {v}' for k, v in c['kinds'].items()) or 'none'} | "
                     f"{c['total_rows']} |")
    if replays:
        lines += ["", "Daily replay (a run with `lookback_days=7` on each day of the window, "
                  "every product planted) against the whole-history run:", "",
                  "| dataset | grain | alert keys, whole history | alert keys, daily runs "
                  "| the same |", "| --- | --- | ---: | ---: | --- |"]
        for r in replays:
            lines.append(f"| {r['dataset']} | {r['grain']} | {r['whole_keys']} | "
                         f"{r['daily_keys']} | {'yes' if r['same'] else 'no'} |")
    if demo:
        lines += ["", "The demo shop's planted truth (whole history, closed 25 December and "
                  "1 January, stock write-offs from 60 days of snapshots):", "",
                  "| demo shop | planted | found | reported | recall | precision, all rows "
                  "| precision, day rows | found by kind | product events outside the truth "
                  "| false day rows |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |"]
        for r in demo:
            ev = ", ".join(f"{k} {v}" for k, v in r["event_rows"].items()) or "none"
            lines.append(f"| {r['dataset']} | {r['truth']} | {r['found']} | {r['reported']} | "
                         f"{r['recall']:.2f} | {r['precision']:.2f} | {r['day_precision']:.2f} | "
                         f"{r['by_kind']} | {ev} | {r['false']} |")
    if speed:
        first = next(iter(speed.values()))
        lines += ["", f"Speed: {first['series']:,} synthetic series, {first['rows']:,} days, a "
                  f"fresh child process each; median of the rounds:", ""]
        lines += speed_table(speed, SPEED_STEPS, {"peak memory MB": "peak_mb", "rows": "anomaly_rows"})
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="one replicate, 100 sparse series, no demo shop, 300 speed series")
    parser.add_argument("--replicates", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--datasets", default=",".join(NAMES))
    parser.add_argument("--series", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--child", choices=list(SPEED_STEPS))
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    if args.child:
        print(json.dumps(speed_child(args.series, args.child), default=str))
        return 0
    replicates = 1 if args.quick else args.replicates
    sparse_limit = 100 if args.quick else 300
    WORK.mkdir(parents=True, exist_ok=True)
    real, replays = [], []
    for slug in args.datasets.split(","):
        for grain in GRAINS:
            print(f"{NAMES[slug]}, {GRAINS[grain]} ...", flush=True)
            t0 = time.perf_counter()
            real.append(evaluate_real(slug, grain, replicates, args.seed, sparse_limit))
            summary = {k: v for k, v in real[-1].items() if k != "dataset"}
            print(f"  {time.perf_counter() - t0:.0f} s: {json.dumps(summary, default=str)}",
                  flush=True)
            if slug in ("cdnow", "superstore_cat") and not args.quick:
                replays.append(daily_replay(slug, grain, args.seed))
                print(f"  daily replay: {replays[-1]}", flush=True)
    demo = [] if args.quick else [evaluate_demo(42)]
    speed = {}
    if not args.no_speed:
        n = 300 if args.quick else args.series
        runs: dict[str, list[dict]] = {}
        for round_no in range(args.rounds):
            for step in SPEED_STEPS:
                print(f"speed, round {round_no + 1}/{args.rounds}: {step} on {n} series ...",
                      flush=True)
                runs.setdefault(step, []).append(run_child(
                    "benchmarks/anomalies.py", ["--child", step, "--series", str(n)]))
        speed = {step: median_run(r) for step, r in runs.items()}
    command = ".venv/bin/python benchmarks/anomalies.py " + " ".join(sys.argv[1:])
    text = report(real, replays, demo, speed, command.strip(), replicates)
    print(text)
    (WORK / "anomalies-latest.md").write_text(text + "\n")
    (WORK / "anomalies-latest.json").write_text(json.dumps(
        {"real": real, "replays": replays, "demo": demo, "speed": speed}, default=str, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
