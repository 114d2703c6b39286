"""Forecast accuracy on real shops' data at several origins, against baselines; and speed.

    .venv/bin/python benchmarks/ml.py [--quick] [--datasets online_retail,...] [--origins 4]
                                      [--refresh-baselines] [--accuracy-only] [--speed-only]
                                      [--series 2000] [--rounds 3]

``--quick``: the demo shop, Superstore per category and Online Retail's top 200 products at the
two latest origins, and 300 series in the speed test (a few minutes).

Datasets (``benchmarks/ml_data.py``; the frames the marts hold, cached in ``benchmarks/.work``):
Online Retail (a UK gift shop, about 4,000 mostly intermittent products, closed on Saturdays,
one year), Superstore per sub-category and per category (four years), CDNOW (the shop's revenue
and units, 18 months) and the demo shop of ``make run`` (seed 42, 760 days).

Origins: ``--origins`` (default 4) cut-offs a quarter (91 days) apart, the latest 28 days before
the dataset's last day; each forecasts the 28 days after it. The series are what
``salesflow.forecast.build_series`` keeps as of the origin (``TOTAL`` revenue, units of skus
with enough recent history), so nothing after an origin is seen by any method.

Scored in the same run, on the same series:

- ``salesflow.forecast.forecast``: MASE of its median ``yhat_p50``, RMSSE of its mean ``yhat``,
  coverage of its 80% and 95% bands;
- baselines (point forecasts, clipped at zero): the weekly seasonal naive forecast (the last
  week repeated); the seeds' linear regression on the day index over the last 90 days;
  statsforecast ``AutoETS(season_length=7)``, ``AutoTheta(season_length=7)`` and
  ``MSTL(season_length=[7, 365])`` (``[7]`` for a series with less than 730 days before the
  origin), each alone; a global LightGBM model (mlforecast, Tweedie loss) trained per dataset
  and origin on all its series: each series divided by its mean over the last 364 days, lags
  of 1-7, 14, 21 and 28 days (and 364 where a series has two years), rolling means of the last
  7 and 28 days and of the same weekday over 4 weeks, weekday, month and day of the year;
  forecast recursively (one model, each day's forecast feeding the next day's lags).
  The statsforecast and LightGBM forecasts do not depend on ``salesflow.forecast``'s models and
  are cached per dataset and origin in ``benchmarks/.work/baselines`` (keyed on the series),
  computed in a child process (statsforecast's workers are forked before LightGBM's threads
  exist).

Measures (per series, then averaged): MASE is the mean absolute error scaled by the in-sample
MAE of the weekly seasonal naive forecast over the series' history before the origin; RMSSE
(the M5 measure) the root mean squared error scaled by the in-sample RMS of the same
differences; coverage the share of hold-out days inside the band. Series whose history has no
weekly difference (scale 0) are left out. "Dense" series sold on more than half of the shop's
open days (days with any sale) of the 364 days up to the origin; ``TOTAL`` is dense. The
"whole-unit floor" of a unit series is the smallest coverage of at least 80% (95%) that any
whole-number interval [a, b], the same on every day, reaches on its 28 hold-out days: where one
value dominates (a product with 26 days of 0 in 28) no constant whole-unit band can hold fewer
than those days. The bias of the mean is (sum of forecasts - sum of actuals) / sum of actuals
over all series and days of the group. The targets are evaluated on the dense series of the
real datasets, and on Online Retail's intermittent products; an 80% coverage above 85% counts
as impossible with whole units where the dense unit series' mean floor is above 85%.

Speed: 2,000 synthetic series of 1,095 days (retail-like: weekly and yearly seasonality,
trends, launches, a third of them intermittent), forecast with backtest on 2 processes, in a
fresh child process whose peak memory (its own and its workers', sampled together) is its own;
median of ``--rounds`` rounds. Results land in ``benchmarks/.work/ml-latest.md`` and ``.json``.

Anomaly detection is evaluated by ``benchmarks/anomalies.py``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import sys
import threading
import time
import warnings
from datetime import date
from pathlib import Path

from common import ROOT, median_run, run_child, speed_table

sys.path.insert(0, str(ROOT))

from ml_data import NAMES, WORK, dataset, demo_shop  # noqa: E402,F401  (demo_shop: re-exported)

HORIZON = 28
QUARTER = 91
YEARLY_DAYS = 730
FULL_DATASETS = ("online_retail", "superstore_subcat", "superstore_cat", "cdnow", "demo")
QUICK_DATASETS = ("demo", "superstore_cat", "online_retail_top200")
BASELINES = ("snaive", "linear90", "ets", "theta", "mstl", "lgbm")
LABELS = {"snaive": "weekly naive", "linear90": "linear 90 d", "ets": "AutoETS", "theta": "AutoTheta",
          "mstl": "MSTL", "lgbm": "LightGBM"}
CACHED = ("ets", "theta", "mstl", "lgbm")
BASELINE_VERSION = 1
BASELINE_DIR = WORK / "baselines"


# --------------------------------------------------------------------------- origins and series

def origins(daily, n: int) -> list:
    """``n`` forecast origins a quarter apart, the latest ``HORIZON`` days before the last day."""
    import pandas as pd

    last = pd.Timestamp(daily["sale_date"].max()).normalize()
    return [last - pd.Timedelta(days=HORIZON + QUARTER * k) for k in reversed(range(n))]


def train_series(ds, origin):
    from salesflow.forecast import build_series

    return build_series(ds.daily, ds.product_daily, origin)


def series_arrays(train) -> dict:
    """``{uid: y}`` of a ``build_series`` frame, in ``unique_id`` order."""
    return {uid: g["y"].to_numpy(float) for uid, g in train.groupby("unique_id", sort=True)}


def holdout(ds, uids: list[str], origin):
    """Actuals of the ``HORIZON`` days after ``origin``: ``TOTAL`` revenue, sku units (0 on
    days without a sale); shape ``(len(uids), HORIZON)``."""
    import numpy as np
    import pandas as pd

    from salesflow.forecast import TOTAL

    days = pd.date_range(origin + pd.Timedelta(days=1), periods=HORIZON, freq="D")
    daily = ds.daily.assign(sale_date=pd.to_datetime(ds.daily["sale_date"]))
    revenue = daily.groupby("sale_date")["revenue"].sum().astype(float).reindex(days,
                                                                                 fill_value=0.0)
    pdl = ds.product_daily.assign(sale_date=pd.to_datetime(ds.product_daily["sale_date"]))
    pdl = pdl[pdl["sale_date"].isin(days)]
    units = (pdl.pivot_table(index="sku", columns="sale_date", values="units", aggfunc="sum")
             .reindex(columns=days).fillna(0.0))
    out = np.zeros((len(uids), HORIZON))
    for i, uid in enumerate(uids):
        if uid == TOTAL:
            out[i] = revenue.to_numpy(float)
        elif uid in units.index:
            out[i] = units.loc[uid].to_numpy(float)
    return out


def open_days(daily, origin) -> int:
    """Days with any sale among the 364 days up to ``origin``."""
    import pandas as pd

    d = pd.to_datetime(daily["sale_date"])
    window = (d > origin - pd.Timedelta(days=364)) & (d <= origin)
    return int((daily.loc[window, "revenue"].astype(float) > 0).sum())


def is_dense(y, n_open: int) -> bool:
    """Sold on more than half of the shop's open days of the last 364 days."""
    return n_open > 0 and int((y[-364:] > 0).sum()) > n_open / 2


def whole_unit_floor(y, level: float) -> float:
    """The smallest share of ``y``'s days, at least ``level``, that a whole-number interval
    ``[a, b]`` (the same on every day) holds: contiguous runs of ``y``'s sorted distinct values."""
    import numpy as np

    y = np.asarray(y, float)
    n = len(y)
    if n == 0:
        return float("nan")
    need = math.ceil(level * n - 1e-9)
    _, counts = np.unique(y, return_counts=True)
    best = n
    for i in range(len(counts)):
        total = 0
        for j in range(i, len(counts)):
            total += counts[j]
            if total >= need:
                best = min(best, total)
                break
    return best / n


# --------------------------------------------------------------------------- baselines

def linear_90(y, h: int):
    import numpy as np

    tail = y[-90:]
    t = np.arange(len(tail))
    if len(tail) < 2:
        return np.full(h, float(tail.mean()) if len(tail) else 0.0)
    slope, intercept = np.polyfit(t, tail, 1)
    return np.clip(intercept + slope * (len(tail) + np.arange(h)), 0.0, None)


def seasonal_naive(y, h: int):
    import numpy as np

    return np.resize(y[-7:], h)


def train_key(train) -> str:
    import pandas as pd

    digest = hashlib.sha1(pd.util.hash_pandas_object(train, index=False).to_numpy().tobytes())
    return f"v{BASELINE_VERSION}-{digest.hexdigest()[:16]}"


def statsforecast_baselines(train, groups: dict) -> tuple[dict, dict]:
    """AutoETS, AutoTheta and MSTL forecasts ``{name: {uid: path}}`` and their seconds."""
    import numpy as np
    from statsforecast import StatsForecast
    from statsforecast.models import MSTL, AutoETS, AutoTheta, SeasonalNaive

    out: dict = {"ets": {}, "theta": {}, "mstl": {}}
    seconds = {}
    yearly = [u for u, y in groups.items() if len(y) >= YEARLY_DAYS]
    other = [u for u in groups if len(groups[u]) < YEARLY_DAYS]
    jobs = [("ets", [AutoETS(season_length=7, alias="ets")], list(groups)),
            ("theta", [AutoTheta(season_length=7, alias="theta")], list(groups)),
            ("mstl", [MSTL(season_length=[7, 365], alias="mstl")], yearly),
            ("mstl", [MSTL(season_length=[7], alias="mstl")], other)]
    for name, models, uids in jobs:
        if not uids:
            continue
        t0 = time.perf_counter()
        sf = StatsForecast(models=models, freq="D", n_jobs=2,
                           fallback_model=SeasonalNaive(7, alias=name))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fc = sf.forecast(df=train[train["unique_id"].isin(uids)], h=HORIZON)
        fc = fc.sort_values(["unique_id", "ds"], kind="stable")
        vals = fc[name].to_numpy(float).reshape(-1, HORIZON)
        for uid, v in zip(fc["unique_id"].to_numpy()[::HORIZON], vals):
            out[name][uid] = np.clip(np.nan_to_num(v, nan=0.0), 0.0, None)
        seconds[name] = round(seconds.get(name, 0.0) + time.perf_counter() - t0, 1)
    return out, seconds


def lightgbm_baseline(train, groups: dict) -> tuple[dict, float]:
    """The global LightGBM model's forecasts ``{uid: path}`` (see the module docstring)."""
    import lightgbm as lgb
    import numpy as np
    from mlforecast import MLForecast
    from mlforecast.lag_transforms import RollingMean, SeasonalRollingMean

    t0 = time.perf_counter()
    scale = {}
    for uid, y in groups.items():
        m = float(np.mean(y[-364:]))
        scale[uid] = m if m > 0 else 1.0
    s = train["unique_id"].map(scale).to_numpy(float)
    df = train[["unique_id", "ds"]].assign(y=train["y"].to_numpy(float) / s)
    lags = [1, 2, 3, 4, 5, 6, 7, 14, 21, 28]
    if max(len(y) for y in groups.values()) >= YEARLY_DAYS:
        lags.append(364)
    model = lgb.LGBMRegressor(objective="tweedie", n_estimators=300, learning_rate=0.05,
                              num_leaves=63, min_child_samples=50, subsample=0.8,
                              subsample_freq=1, colsample_bytree=0.8, random_state=0,
                              n_jobs=1, verbosity=-1)
    mlf = MLForecast(models={"lgbm": model}, freq="D", lags=lags,
                     lag_transforms={1: [RollingMean(7), RollingMean(28)],
                                     7: [SeasonalRollingMean(season_length=7, window_size=4)]},
                     date_features=["dayofweek", "month", "dayofyear"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlf.fit(df, static_features=[], dropna=False)
        fc = mlf.predict(h=HORIZON)
    fc = fc.sort_values(["unique_id", "ds"], kind="stable")
    vals = fc["lgbm"].to_numpy(float).reshape(-1, HORIZON)
    out = {uid: np.clip(np.nan_to_num(v, nan=0.0) * scale[uid], 0.0, None)
           for uid, v in zip(fc["unique_id"].to_numpy()[::HORIZON], vals)}
    return out, round(time.perf_counter() - t0, 1)


def baselines_child(slug: str, origin: str) -> dict:
    """Compute and cache the statsforecast and LightGBM baselines of one dataset and origin."""
    import numpy as np
    import pandas as pd

    ds = dataset(slug)
    o = pd.Timestamp(origin)
    train = train_series(ds, o)
    groups = series_arrays(train)
    paths, seconds = statsforecast_baselines(train, groups)
    paths["lgbm"], seconds["lgbm"] = lightgbm_baseline(train, groups)
    uids = list(groups)
    frame = pd.DataFrame({"unique_id": np.repeat(uids, HORIZON),
                          "step": np.tile(np.arange(HORIZON), len(uids))})
    for name in CACHED:
        frame[name] = np.concatenate([paths[name].get(u, np.full(HORIZON, np.nan))
                                      for u in uids])
    frame["mstl_yearly"] = np.repeat([len(groups[u]) >= YEARLY_DAYS for u in uids], HORIZON)
    path, stamp = baseline_paths(slug, o)
    BASELINE_DIR.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    stamp.write_text(json.dumps({"key": train_key(train), "seconds": seconds}))
    return {"series": len(uids), "seconds": seconds}


def baseline_paths(slug: str, origin) -> tuple[Path, Path]:
    stem = f"{slug}-{origin:%Y-%m-%d}"
    return BASELINE_DIR / f"{stem}.parquet", BASELINE_DIR / f"{stem}.json"


def cached_baselines(slug: str, origin, train, refresh: bool) -> tuple:
    """``(frame, seconds, cached)`` of the cached baselines, computed first when missing or stale."""
    import pandas as pd

    path, stamp = baseline_paths(slug, origin)
    key = train_key(train)
    fresh = (not refresh and path.exists() and stamp.exists()
             and json.loads(stamp.read_text()).get("key") == key)
    if not fresh:
        run_child("benchmarks/ml.py", ["--baselines-child", slug, f"{origin:%Y-%m-%d}"])
        if json.loads(stamp.read_text()).get("key") != key:
            raise RuntimeError(f"baselines of {slug} at {origin:%Y-%m-%d} do not match the series")
    return pd.read_parquet(path), json.loads(stamp.read_text())["seconds"], fresh


# --------------------------------------------------------------------------- evaluation

def evaluate(ds, origin, refresh: bool = False) -> dict:
    """Score ``salesflow.forecast.forecast`` and the baselines on one dataset and origin."""
    import numpy as np
    import pandas as pd

    from salesflow.forecast import TOTAL, forecast

    train = train_series(ds, origin)
    groups = series_arrays(train)
    uids = list(groups)
    t0 = time.perf_counter()
    base, base_seconds, cached = cached_baselines(ds.slug, origin, train, refresh)
    base_wall = time.perf_counter() - t0
    t0 = time.perf_counter()
    fc, _ = forecast(train, origin.date(), HORIZON, n_jobs=2)
    seconds = time.perf_counter() - t0
    fc = fc.assign(series_id=fc["series_id"].astype(str), ds=pd.to_datetime(fc["ds"]))

    def matrix(col):
        return (fc.pivot(index="series_id", columns="ds", values=col).reindex(uids)
                .to_numpy(float))

    f = {c: matrix(c) for c in ("yhat", "yhat_p50", "yhat_lo_80", "yhat_hi_80", "yhat_lo_95",
                                "yhat_hi_95")}
    chosen = fc.groupby("series_id")["model"].first()
    base = base.set_index(["unique_id", "step"]).sort_index()
    paths = {"snaive": np.array([seasonal_naive(groups[u], HORIZON) for u in uids]),
             "linear90": np.array([linear_90(groups[u], HORIZON) for u in uids])}
    for name in CACHED:
        paths[name] = base[name].unstack("step").reindex(uids).to_numpy(float)
    yearly = base["mstl_yearly"].groupby(level=0).first().reindex(uids).fillna(False)
    actual = holdout(ds, uids, origin)
    n_open = open_days(ds.daily, origin)
    rows = []
    for i, uid in enumerate(uids):
        y_hist, y = groups[uid], actual[i]
        diff = y_hist[7:] - y_hist[:-7]
        scale = float(np.mean(np.abs(diff))) if len(y_hist) > 7 else float("nan")
        if not scale > 0:
            continue
        scale2 = float(np.sqrt(np.mean(diff ** 2)))
        unit = uid != TOTAL
        mean = f["yhat"][i]
        row = {
            "series": uid, "unit": unit, "dense": is_dense(y_hist, n_open),
            "history": len(y_hist), "model": chosen.get(uid, ""),
            "mstl_yearly": bool(yearly[uid]),
            "mase": np.mean(np.abs(y - f["yhat_p50"][i])) / scale,
            "mase_mean": np.mean(np.abs(y - mean)) / scale,
            "rmsse": np.sqrt(np.mean((y - mean) ** 2)) / scale2,
            "cov80": np.mean((y >= f["yhat_lo_80"][i] - 1e-9) & (y <= f["yhat_hi_80"][i] + 1e-9)),
            "cov95": np.mean((y >= f["yhat_lo_95"][i] - 1e-9) & (y <= f["yhat_hi_95"][i] + 1e-9)),
            "floor80": whole_unit_floor(y, 0.80) if unit else float("nan"),
            "floor95": whole_unit_floor(y, 0.95) if unit else float("nan"),
            "sum_y": float(y.sum()), "sum_yhat": float(mean.sum()),
        }
        for name in BASELINES:
            p = paths[name][i]
            row[f"mase_{name}"] = np.mean(np.abs(y - p)) / scale
            row[f"rmsse_{name}"] = np.sqrt(np.mean((y - p) ** 2)) / scale2
            row[f"sum_{name}"] = float(p.sum())
        rows.append(row)
    r = pd.DataFrame(rows)
    scopes = {"all": r, "dense": r[r["dense"]],
              "intermittent": r[~r["dense"] & r["unit"]]}
    return {
        "dataset": ds.name, "slug": ds.slug, "real": ds.real,
        "origin": f"{origin:%Y-%m-%d}", "history_days": max(len(y) for y in groups.values()),
        "open_days": n_open, "series": len(uids), "scored": len(r),
        "forecast_seconds": round(seconds, 1), "baseline_seconds": base_seconds,
        "baselines_cached": cached, "baseline_wall_seconds": round(base_wall, 1),
        "models": r["model"].value_counts().to_dict(),
        "scopes": {k: summarise(v) for k, v in scopes.items()},
    }


def summarise(r) -> dict:
    """Means over a group of series rows (``evaluate``); bias over the group's sums."""
    import numpy as np

    if not len(r):
        return {"n": 0}
    out = {"n": len(r)}
    for col in ("mase", "mase_mean", "rmsse", "cov80", "cov95"):
        out[col] = float(r[col].mean())
    units = r[r["unit"]]
    out["unit_series"] = len(units)
    for col in ("floor80", "floor95"):
        out[col] = float(units[col].mean()) if len(units) else float("nan")
    total = float(r["sum_y"].sum())
    out["bias"] = (float(r["sum_yhat"].sum()) - total) / total if total > 0 else float("nan")
    for name in BASELINES:
        out[f"mase_{name}"] = float(r[f"mase_{name}"].mean())
        out[f"rmsse_{name}"] = float(r[f"rmsse_{name}"].mean())
        out[f"bias_{name}"] = ((float(r[f"sum_{name}"].sum()) - total) / total if total > 0
                               else float("nan"))
    out["best"] = min(BASELINES, key=lambda b: out[f"mase_{b}"])
    k = int(r["mstl_yearly"].sum())
    out["mstl"] = "7,365" if k == len(r) else ("7" if k == 0 else f"7,365 on {k}/{len(r)}")
    out["history_min"] = int(r["history"].min())
    return out


def targets(res: dict) -> list[dict]:
    """The targets of a real dataset and origin (dense series; Online Retail's intermittent
    products), each ``{"target", "figure", "met"}``."""
    rows = []
    if not res["real"]:
        return rows
    d = res["scopes"]["dense"]
    where = f"{res['dataset']}, {res['origin']}"
    if d.get("n"):
        best = d["best"]
        rows.append({"where": where, "group": f"dense ({d['n']})",
                     "target": "MASE <= best single baseline",
                     "figure": f"{d['mase']:.3f} vs {LABELS[best]} {d[f'mase_{best}']:.3f}",
                     "met": d["mase"] <= d[f"mase_{best}"] + 1e-12})
        if res["history_days"] >= YEARLY_DAYS:
            ratio = d["mase"] / d["mase_snaive"]
            rows.append({"where": where, "group": f"dense ({d['n']})",
                         "target": ">= 35% below weekly naive (2+ years of history)",
                         "figure": f"{ratio - 1:+.1%} ({d['mase']:.3f} vs {d['mase_snaive']:.3f})",
                         "met": ratio <= 0.65})
        cov = d["cov80"]
        ok = 0.75 <= cov <= 0.85
        figure = f"{cov:.1%}"
        if d.get("unit_series"):
            figure += f" (whole-unit floor {d['floor80']:.1%} on {d['unit_series']} unit series)"
        # above the range because no constant whole-unit band can hold fewer days: impossible
        met = None if (cov > 0.85 and d.get("unit_series") and d["floor80"] > 0.85) else ok
        rows.append({"where": where, "group": f"dense ({d['n']})",
                     "target": "80% band covers 75-85%", "figure": figure, "met": met})
    it = res["scopes"]["intermittent"]
    if res["slug"].startswith("online_retail") and it.get("n"):
        worst = max(BASELINES, key=lambda b: it["mase"] / it[f"mase_{b}"])
        rows.append({"where": where, "group": f"intermittent products ({it['n']})",
                     "target": "MASE below every baseline",
                     "figure": f"{it['mase']:.3f}; closest: {LABELS[worst]} "
                               f"{it[f'mase_{worst}']:.3f}; bias of the mean {it['bias']:+.1%}",
                     "met": all(it["mase"] < it[f"mase_{b}"] for b in BASELINES)})
    return rows


# --------------------------------------------------------------------------- speed

def synthetic_panel(n: int, days: int = 1095, seed: int = 0):
    """``n`` retail-like sku series (units a day) ending 2025-06-30."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    ds = pd.date_range(end="2025-06-30", periods=days, freq="D")
    weekday = np.array([0.86, 0.88, 0.92, 0.97, 1.12, 1.38, 1.05])[ds.dayofweek.to_numpy()]
    doy = ds.dayofyear.to_numpy()
    years = np.arange(days) / 365.25
    rates = rng.lognormal(0.0, 1.2, n)
    amp = np.where(rng.random(n) < 0.3, rng.uniform(0.2, 0.8, n), rng.uniform(0.0, 0.1, n))
    phase = rng.uniform(0, 365, n)
    growth = rng.normal(0.03, 0.1, n)
    start = np.where(rng.random(n) < 0.1, rng.integers(0, days - 120, n), 0)
    parts = []
    for i in range(n):
        lam = (rates[i] * weekday * (1 + amp[i] * np.cos(2 * np.pi * (doy - phase[i]) / 365.25))
               * (1 + growth[i]) ** years * rng.lognormal(0.0, 0.2, days))
        s = int(start[i])
        parts.append(pd.DataFrame({"unique_id": f"SKU-{i:05d}", "ds": ds[s:],
                                   "y": rng.poisson(lam[s:]).astype(float)}))
    return pd.concat(parts, ignore_index=True)


class TreeMemory:
    """Samples the resident memory of this process plus its children, summed."""

    def __init__(self, every: float = 0.05):
        import psutil

        self.proc = psutil.Process()
        self.every = every
        self.peak = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        import psutil

        while not self.stop.is_set():
            total = 0
            for p in [self.proc, *self.proc.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            time.sleep(self.every)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


SPEED_STEPS = {"forecast": "forecast + backtest"}


def speed_child(n: int, step: str) -> dict:
    from salesflow.forecast import forecast

    panel = synthetic_panel(n)
    with TreeMemory() as mem:
        t0 = time.perf_counter()
        fc, bt = forecast(panel, date(2025, 6, 30), HORIZON, n_jobs=2)
        seconds = time.perf_counter() - t0
    return {"series": int(panel["unique_id"].nunique()), "rows": len(panel),
            "seconds": round(seconds, 2), "peak_tree_mb": round(mem.peak / 2**20),
            "forecast_rows": len(fc), "backtest_rows": len(bt),
            "models": fc.groupby("series_id")["model"].first().value_counts().to_dict()}


# --------------------------------------------------------------------------- report

def pct(x: float) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{100 * x:.1f}%"


def num(x: float, digits: int = 3) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


SCOPE_TITLES = {
    "all": "All series",
    "dense": "Dense series (sold on more than half of the open days of the 364 days before "
             "the origin; `TOTAL` included)",
    "intermittent": "Intermittent products (the other skus)",
}


def scope_table(results: list[dict], scope: str) -> list[str]:
    head = ("| dataset | origin | history, days | series | MASE, median | MASE, mean "
            + "".join(f"| vs {LABELS[b]} " for b in BASELINES)
            + "| best baseline | RMSSE, mean | 80% cover | 95% cover | whole-unit floor 80% / 95% "
            + ("| bias of the mean | baselines' bias " if scope == "intermittent" else "") + "|")
    cols = 11 + len(BASELINES) + (2 if scope == "intermittent" else 0)
    lines = [head, "| --- | --- " + "| ---: " * (cols - 3) + "| --- |"]
    lines[-1] = "| " + " | ".join(["---", "---"] + ["---:"] * (cols - 2)) + " |"
    for res in results:
        s = res["scopes"][scope]
        if not s.get("n"):
            continue
        ratios = []
        for b in BASELINES:
            cell = num(s["mase"] / s[f"mase_{b}"], 2) if s[f"mase_{b}"] > 0 else "–"
            if b == "mstl":
                cell += f" ({s['mstl']})"
            ratios.append(cell)
        row = [res["dataset"], res["origin"], str(res["history_days"]),
               f"{s['n']}", num(s["mase"]), num(s["mase_mean"]), *ratios,
               f"{LABELS[s['best']]} {num(s['mase_' + s['best']])}", num(s["rmsse"]),
               pct(s["cov80"]), pct(s["cov95"]),
               f"{pct(s['floor80'])} / {pct(s['floor95'])}" if s["unit_series"] else "–"]
        if scope == "intermittent":
            row += [f"{s['bias']:+.1%}",
                    ", ".join(f"{LABELS[b]} {s['bias_' + b]:+.0%}" for b in BASELINES)]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def accuracy_report(results: list[dict]) -> list[str]:
    lines = [
        "",
        "MASE of the forecast's median `yhat_p50` (and of its mean `yhat`); \"vs X\" is the "
        "forecast's mean MASE (median) divided by baseline X's (below 1: the forecast is "
        "better); MSTL's seasons in brackets; RMSSE of the mean `yhat`; coverage of the "
        "forecast's bands; whole-unit floor: the least coverage of at least 80% / 95% that a "
        "constant whole-number band reaches on the hold-out days of the unit series.",
    ]
    for scope, title in SCOPE_TITLES.items():
        if not any(r["scopes"][scope].get("n") for r in results):
            continue
        lines += ["", f"{title}:", "", *scope_table(results, scope)]
    rows = [t for r in results for t in targets(r)]
    if rows:
        lines += ["", "Targets (real datasets):", "",
                  "| dataset, origin | series | target | figure | met |",
                  "| --- | --- | --- | --- | --- |"]
        for t in rows:
            met = {True: "yes", False: "**no**", None: "impossible with whole units"}[t["met"]]
            lines.append(f"| {t['where']} | {t['group']} | {t['target']} | {t['figure']} "
                         f"| {met} |")
    lines += ["", "| dataset | origin | series (scored) | forecast seconds | baselines "
              "seconds (statsforecast, LightGBM) | chosen models |",
              "| --- | --- | ---: | ---: | --- | --- |"]
    for r in results:
        b = r["baseline_seconds"]
        bs = ", ".join(f"{LABELS[k]} {v}" for k, v in b.items())
        models = ", ".join(f"{k} {v}" for k, v in sorted(r["models"].items(),
                                                         key=lambda kv: -kv[1])[:4])
        lines.append(f"| {r['dataset']} | {r['origin']} | {r['series']} ({r['scored']}) | "
                     f"{r['forecast_seconds']} | {bs}{' (cached)' if r['baselines_cached'] else ''}"
                     f" | {models} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="the demo shop, Superstore per category and Online Retail's top "
                             "200 products at 2 origins; 300 series for the speed test")
    parser.add_argument("--datasets", default=None,
                        help=f"comma-separated, of: {', '.join(NAMES)}")
    parser.add_argument("--origins", type=int, default=None,
                        help="forecast origins a quarter apart (default 4, --quick 2)")
    parser.add_argument("--refresh-baselines", action="store_true",
                        help="recompute the cached statsforecast and LightGBM baselines")
    parser.add_argument("--series", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each speed measurement")
    parser.add_argument("--speed-only", action="store_true", help="only the speed measurements")
    parser.add_argument("--accuracy-only", action="store_true",
                        help="only the accuracy measurements, no speed")
    parser.add_argument("--child", choices=list(SPEED_STEPS))
    parser.add_argument("--baselines-child", nargs=2, metavar=("DATASET", "ORIGIN"))
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    if args.child:
        print(json.dumps(speed_child(args.series, args.child), default=str))
        return 0
    if args.baselines_child:
        print(json.dumps(baselines_child(*args.baselines_child), default=str))
        return 0

    slugs = (args.datasets.split(",") if args.datasets else
             list(QUICK_DATASETS if args.quick else FULL_DATASETS))
    n_origins = args.origins or (2 if args.quick else 4)
    n_series = 300 if args.quick else args.series
    results = []
    t_start = time.perf_counter()
    for slug in ([] if args.speed_only else slugs):
        ds = dataset(slug)
        for origin in origins(ds.daily, n_origins):
            print(f"{ds.name}, origin {origin:%Y-%m-%d} ...", flush=True)
            results.append(evaluate(ds, origin, args.refresh_baselines))
    accuracy_seconds = time.perf_counter() - t_start
    runs: dict[str, list[dict]] = {}
    for round_no in range(0 if args.accuracy_only else args.rounds):
        for step in SPEED_STEPS:
            print(f"speed, round {round_no + 1}/{args.rounds}: {step} on {n_series} x 1,095 days "
                  f"in a child process ...", flush=True)
            runs.setdefault(step, []).append(run_child(
                "benchmarks/ml.py", ["--child", step, "--series", str(n_series)]))
    speed = {step: median_run(r) for step, r in runs.items()}

    import lightgbm
    import mlforecast
    import pandas
    import statsforecast

    lines = [f"machine: {platform.machine()}, {os.cpu_count()} cores, "
             f"Python {platform.python_version()}, statsforecast {statsforecast.__version__}, "
             f"mlforecast {mlforecast.__version__}, lightgbm {lightgbm.__version__}, "
             f"pandas {pandas.__version__}"]
    if results:
        lines += [f"accuracy: {len(results)} dataset-origins in {accuracy_seconds:.0f} s"]
        lines += accuracy_report(results)
    if speed:
        sf = speed["forecast"]
        lines += ["", f"speed: {sf['series']:,} series, {sf['rows']:,} days; {args.rounds} rounds, "
                  f"median; memory: the child process and its workers, sampled together", ""]
        lines += speed_table(speed, SPEED_STEPS, {"peak memory MB": "peak_tree_mb"})
        lines += ["", f"models chosen: {sf['models']}"]
    report = "\n".join(lines)
    print(report)
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / "ml-latest.md").write_text(report + "\n")
    (WORK / "ml-latest.json").write_text(json.dumps({"results": results, "speed": speed},
                                                    default=str, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
