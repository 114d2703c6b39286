"""Forecasts and anomalies: accuracy on the demo shop and two real datasets, and speed.

    .venv/bin/python benchmarks/ml.py [--quick] [--seeds 42,1,2,4,6,8] [--series 2000]
                                      [--rounds 3] [--speed-only] [--accuracy-only]
                                      [--global-model]

``--quick``: one demo seed and 300 series in the speed test (about a minute).

Accuracy (the last 28 days of each dataset are held out; nothing after the cut-off is seen):

- the emulator's demo shop as ``make run`` builds it (seed 42, 760 days to 2025-06-30, 300
  products, 120 orders a day), then the same shop with other seeds;
- Superstore orders (``/work/shared/data/superstore``), per product and per sub-category;
- CDNOW purchases (``/work/shared/data/cdnow``): the shop's revenue and its units.

Per series: MASE of ``salesflow.forecast.forecast``'s median ``yhat_p50`` (the headline) and
of its mean ``yhat``, against the weekly seasonal naive forecast (the last week repeated) and
the seeds' baseline (a linear regression on the day index over the last 90 days, clipped at
zero), all scaled by the in-sample MAE of the weekly seasonal naive forecast; RMSSE (the M5
measure: root mean squared error scaled by the in-sample root mean square of the weekly naive
differences) of the mean ``yhat`` and of the two baselines; coverage of the 80% and 95% bands.

Anomalies on the demo shops: ``detect_sales_anomalies`` over the whole history (``TOTAL`` and
every sku) and ``detect_stock_anomalies`` over daily stock snapshots of the last 60 days,
matched with the planted-anomaly truth on (series, day, direction). The snapshots are rebuilt
backwards from today's stock, the sales and the truth's write-off (with random deliveries),
as the daily extraction would have recorded them. On the real datasets, which have no truth,
the alarm rate.

``--global-model`` also fits a global scikit-learn model (gradient-boosted trees on lag,
calendar and last-year features) for the demo shops' skus and reports its hold-out MASE next
to the selection's, the test it has to pass to join the candidates.

Speed: 2,000 synthetic series of 1,095 days (retail-like: weekly and yearly seasonality,
trends, launches, a third of them intermittent), forecast with backtest on 2 processes, and
anomaly scoring of the same panel (whole history, and a daily run), each in a fresh child
process whose peak memory (its own and its workers', sampled together) is its own; median of
``--rounds`` rounds. Results land in ``benchmarks/.work/ml-latest.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import threading
import time
import warnings
from datetime import date, timedelta
from pathlib import Path

from common import ROOT, median_run, run_child

WORK = ROOT / "benchmarks" / ".work"
DATA = Path("/work/shared/data")
SUPERSTORE = DATA / "superstore" / "superstore_9994_2016-2019.csv"
CDNOW = DATA / "cdnow" / "cdnow_master.csv"
DEMO = dict(days=760, products=300, orders_per_day=120.0, end=date(2025, 6, 30))
HORIZON = 28


# --------------------------------------------------------------------------- data

def demo_shop(seed: int):
    import pandas as pd

    from emulator.demo import generate_demo
    from salesflow.datasets import daily_frames

    end = DEMO["end"]
    start = end - timedelta(days=DEMO["days"] - 1)
    shop = generate_demo(seed, start, end, n_products=DEMO["products"],
                         orders_per_day=DEMO["orders_per_day"])
    s = shop.sales
    lines = pd.DataFrame({
        "sale_date": s["sale_ts"].dt.normalize(), "sale_id": s["sale_id"], "sku": s["sku"],
        "quantity": s["quantity"], "revenue": (s["quantity"] * s["unit_price"]).round(2),
    })
    daily, product_daily = daily_frames(lines, start, end)
    return daily, product_daily, shop


def datasets(quick: bool, seeds: list[int]):
    from salesflow.datasets import daily_frames, read_cdnow, read_superstore

    for seed in seeds[:1] if quick else seeds:
        daily, product_daily, shop = demo_shop(seed)
        yield f"demo shop, seed {seed}", daily, product_daily, shop
    lines = read_superstore(SUPERSTORE)
    yield "Superstore, per product", *daily_frames(lines), None
    yield "Superstore, per sub-category", *daily_frames(
        read_superstore(SUPERSTORE, sku_column="Sub-Category")), None
    yield "CDNOW", *daily_frames(read_cdnow(CDNOW)), None


# --------------------------------------------------------------------------- forecasts

def linear_90(y, h: int):
    import numpy as np

    tail = y[-90:]
    t = np.arange(len(tail))
    if len(tail) < 2:
        return np.full(h, float(tail.mean()) if len(tail) else 0.0)
    slope, intercept = np.polyfit(t, tail, 1)
    return np.clip(intercept + slope * (len(tail) + np.arange(h)), 0.0, None)


def evaluate_forecast(daily, product_daily, n_jobs: int = 2) -> dict:
    import numpy as np
    import pandas as pd

    from salesflow.forecast import TOTAL, build_series, forecast

    end = pd.Timestamp(daily["sale_date"].max())
    as_of = end - pd.Timedelta(days=HORIZON)
    train = build_series(daily, product_daily, as_of)
    full = build_series(daily, product_daily, end, min_history=1, min_sale_days=1,
                        inactive_days=10**9)
    t0 = time.perf_counter()
    fc, bt = forecast(train, as_of, HORIZON, n_jobs=n_jobs)
    seconds = time.perf_counter() - t0
    actual = full[(full["ds"] > as_of)].set_index(["unique_id", "ds"])["y"]
    kinds = bt[bt["chosen"]].set_index("series_id")["reason"].str.extract(r"^(\w+)")[0]
    rows = []
    for uid, g in train.groupby("unique_id", sort=True):
        y_hist = g["y"].to_numpy(float)
        diff = y_hist[7:] - y_hist[:-7]
        scale = float(np.mean(np.abs(diff))) if len(y_hist) > 7 else np.nan
        if not scale > 0:
            continue
        scale2 = float(np.sqrt(np.mean(diff ** 2)))
        f = fc[fc["series_id"] == uid]
        days = pd.to_datetime(f["ds"])
        y = actual.reindex(pd.MultiIndex.from_arrays([[uid] * len(days), days])).fillna(0.0)
        y = y.to_numpy(float)
        snaive = np.resize(y_hist[-7:], HORIZON)
        linear = linear_90(y_hist, HORIZON)
        mean = f["yhat"].to_numpy()
        rows.append({
            "series": uid, "kind": kinds.get(uid, ""), "model": f["model"].iloc[0],
            "mase": np.mean(np.abs(y - f["yhat_p50"].to_numpy())) / scale,
            "mase_mean": np.mean(np.abs(y - mean)) / scale,
            "mase_snaive": np.mean(np.abs(y - snaive)) / scale,
            "mase_linear": np.mean(np.abs(y - linear)) / scale,
            "rmsse": np.sqrt(np.mean((y - mean) ** 2)) / scale2,
            "rmsse_snaive": np.sqrt(np.mean((y - snaive) ** 2)) / scale2,
            "rmsse_linear": np.sqrt(np.mean((y - linear) ** 2)) / scale2,
            "cov80": np.mean((y >= f["yhat_lo_80"].to_numpy() - 1e-9)
                             & (y <= f["yhat_hi_80"].to_numpy() + 1e-9)),
            "cov95": np.mean((y >= f["yhat_lo_95"].to_numpy() - 1e-9)
                             & (y <= f["yhat_hi_95"].to_numpy() + 1e-9)),
        })
    r = pd.DataFrame(rows)
    smooth = r[r["kind"] == "smooth"]
    total = r[r["series"] == TOTAL]
    skus = r[r["series"] != TOTAL]
    return {
        "series": len(r), "seconds": round(seconds, 2),
        "mase": r["mase"].mean(), "mase_mean": r["mase_mean"].mean(),
        "mase_snaive": r["mase_snaive"].mean(), "mase_linear": r["mase_linear"].mean(),
        "rmsse": r["rmsse"].mean(), "rmsse_snaive": r["rmsse_snaive"].mean(),
        "rmsse_linear": r["rmsse_linear"].mean(),
        "cov80": r["cov80"].mean(), "cov95": r["cov95"].mean(),
        "smooth_series": len(smooth),
        "smooth_mase": smooth["mase"].mean() if len(smooth) else float("nan"),
        "smooth_mase_snaive": smooth["mase_snaive"].mean() if len(smooth) else float("nan"),
        "sku_mase": skus["mase"].mean() if len(skus) else float("nan"),
        "sku_mase_mean": skus["mase_mean"].mean() if len(skus) else float("nan"),
        "total": total.iloc[0].to_dict() if len(total) else None,
        "kinds": r["kind"].value_counts().to_dict(),
        "models": r["model"].value_counts().to_dict(),
    }


def global_gbm(daily, product_daily) -> dict:
    """A global scikit-learn model for the skus, measured on the same hold-out: gradient-boosted
    trees (Poisson loss) forecasting each of the 28 days from the recent means, zero share,
    days since the last sale, horizon, weekday, day of year and last year's level, everything
    scaled by the sku's 91-day mean; trained on weekly origins of the year before the cut-off."""
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingRegressor

    from salesflow.forecast import TOTAL, build_series

    end = pd.Timestamp(daily["sale_date"].max())
    as_of = end - pd.Timedelta(days=HORIZON)
    train = build_series(daily, product_daily, as_of)
    full = build_series(daily, product_daily, end, min_history=1, min_sale_days=1,
                        inactive_days=10**9).set_index(["unique_id", "ds"])["y"]

    def features(y, o, first):
        s = y[max(0, o - 90):o + 1].mean() + 0.05
        nz = np.flatnonzero(y[:o + 1] > 0)
        base = [y[max(0, o - 6):o + 1].mean() / s, y[max(0, o - 27):o + 1].mean() / s,
                y[max(0, o - 363):o + 1].mean() / s, (y[max(0, o - 27):o + 1] == 0).mean(),
                min(60, o - nz[-1]) if len(nz) else 60, np.log(s)]
        rows = []
        for k in range(1, HORIZON + 1):
            t = o + k
            day = first + pd.Timedelta(days=t)
            last = (y[t - 367:t - 360].mean() / (y[o - 454:o - 363].mean() + 0.05)
                    if o - 454 >= 0 else np.nan)
            rows.append(base + [k, day.dayofweek, day.dayofyear, last])
        return np.array(rows), s

    groups = {u: (g["ds"].iloc[0], g["y"].to_numpy(float))
              for u, g in train.groupby("unique_id") if u != TOTAL}
    t0 = time.perf_counter()
    xs, ys = [], []
    for first, y in groups.values():
        n = len(y)
        for o in range(n - 1 - HORIZON, max(90, n - 1 - HORIZON - 364), -7):
            f, s = features(y, o, first)
            xs.append(f)
            ys.append(y[o + 1:o + 1 + HORIZON] / s)
    model = HistGradientBoostingRegressor(loss="poisson", max_iter=300, learning_rate=0.05,
                                          min_samples_leaf=100, random_state=0)
    model.fit(np.vstack(xs), np.concatenate(ys))
    fit_seconds = time.perf_counter() - t0
    mase = []
    for uid, (first, y) in groups.items():
        f, s = features(y, len(y) - 1, first)
        days = pd.date_range(as_of + pd.Timedelta(days=1), periods=HORIZON, freq="D")
        actual = full.reindex(pd.MultiIndex.from_arrays([[uid] * HORIZON, days])).fillna(0.0)
        scale = float(np.mean(np.abs(y[7:] - y[:-7])))
        if scale > 0:
            mase.append(np.mean(np.abs(actual.to_numpy(float) - model.predict(f) * s)) / scale)
    return {"sku_series": len(mase), "mase": float(np.mean(mase)),
            "train_rows": int(sum(len(v) for v in ys)), "fit_seconds": round(fit_seconds, 1)}


# --------------------------------------------------------------------------- anomalies

def stock_snapshots(shop, product_daily, days: int = 60, seed: int = 0):
    """Closing stock of the last ``days`` days, rebuilt backwards from today's stock."""
    import numpy as np
    import pandas as pd

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


def evaluate_anomalies(daily, product_daily, shop) -> dict:
    import pandas as pd

    from salesflow.anomalies import (SalesAnomalyConfig, detect_sales_anomalies,
                                     detect_stock_anomalies)
    from salesflow.forecast import TOTAL, build_series

    end = pd.Timestamp(daily["sale_date"].max())
    series = build_series(daily, product_daily, end, min_history=1, min_sale_days=1,
                          inactive_days=10**9, detail=True)
    # The demo shop closes on 25 December and 1 January: its owner configures them as closed
    # days (SALESFLOW_CLOSED_DAYS=12-25,01-01), as any shop would its own.
    config = SalesAnomalyConfig(closed_days=("12-25", "01-01") if shop is not None else ())
    t0 = time.perf_counter()
    sales = detect_sales_anomalies(series, end, lookback_days=None, config=config)
    seconds = time.perf_counter() - t0
    out = {"rows": len(sales), "seconds": round(seconds, 2),
           "series_days": int(len(series)),
           "alarms_per_1000_series_days": 1000 * len(sales) / max(1, len(series))}
    if shop is None:
        return out
    snaps = stock_snapshots(shop, product_daily)
    stock = detect_stock_anomalies(snaps, product_daily, end, lookback_days=None)
    found = pd.concat([sales, stock], ignore_index=True)
    truth = shop.truth
    keys = set(zip(truth["series_id"], truth["date"], truth["direction"]))
    hits = set(zip(found["series_id"], found["ds"], found["direction"]))
    first_year = pd.Timestamp(daily["sale_date"].min()) + pd.Timedelta(days=365)
    later = found[pd.to_datetime(found["ds"]) >= first_year]
    later_hits = set(zip(later["series_id"], later["ds"], later["direction"]))
    later_truth = {k for k in keys if pd.Timestamp(k[1]) >= first_year}

    def group(k):
        if k[0] == TOTAL:
            return "TOTAL"
        return "stock" if truth.set_index(["series_id", "date"]).loc[(k[0], k[1]), "kind"] \
            == "stock_shrinkage" else "sku"

    found_by = {}
    for k in keys:
        g = group(k)
        n, m = found_by.get(g, (0, 0))
        found_by[g] = (n + (k in hits), m + 1)
    false = found[[k not in keys for k in zip(found["series_id"], found["ds"], found["direction"])]]
    out.update({
        "truth": len(keys), "found": len(keys & hits), "reported": len(hits),
        "recall": len(keys & hits) / max(1, len(keys)),
        "precision": len(keys & hits) / max(1, len(hits)),
        "recall_after_first_year": len(later_truth & later_hits) / max(1, len(later_truth)),
        "precision_after_first_year": len(later_truth & later_hits) / max(1, len(later_hits)),
        "by_kind": {g: f"{n}/{m}" for g, (n, m) in sorted(found_by.items())},
        "false": [f"{r.series_id} {r.ds} {r.kind}" for r in false.itertuples()],
        "stock_rows": len(stock),
    })
    return out


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


SPEED_STEPS = {
    "forecast": "forecast + backtest",
    "anomalies": "anomaly scoring, whole history",
    "anomalies_daily": "anomaly scoring, a daily run (last 7 days)",
}


def speed_child(n: int, step: str) -> dict:
    from salesflow.anomalies import detect_sales_anomalies
    from salesflow.forecast import forecast

    panel = synthetic_panel(n)
    with TreeMemory() as mem:
        t0 = time.perf_counter()
        if step == "forecast":
            fc, bt = forecast(panel, date(2025, 6, 30), HORIZON, n_jobs=2)
            extra = {"forecast_rows": len(fc), "backtest_rows": len(bt),
                     "models": fc.groupby("series_id")["model"].first().value_counts().to_dict()}
        else:
            lookback = None if step == "anomalies" else 7
            found = detect_sales_anomalies(panel, date(2025, 6, 30), lookback_days=lookback)
            extra = {"anomaly_rows": len(found)}
        seconds = time.perf_counter() - t0
    return {"series": int(panel["unique_id"].nunique()), "rows": len(panel),
            "seconds": round(seconds, 2), "peak_tree_mb": round(mem.peak / 2**20), **extra}


# --------------------------------------------------------------------------- report

def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def accuracy_report(results: list[dict]) -> list[str]:
    lines = [
        "",
        "MASE: of the median `yhat_p50` (the headline, vs naive and vs linear) and of the mean "
        "`yhat`; RMSSE: of the mean `yhat` against the naive and linear forecasts.",
        "",
        "| dataset | series | MASE, median | MASE, mean | weekly seasonal naive | linear 90 d "
        "| vs naive | vs linear | RMSSE, mean | RMSSE naive | RMSSE linear | 80% cover "
        "| 95% cover | smooth series: MASE vs naive | TOTAL: model, MASE vs naive |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | --- | --- |",
    ]
    for r in results:
        f = r["forecast"]
        t = f["total"]
        tot = f"{t['model']}, {t['mase']:.3f} vs {t['mase_snaive']:.3f}" if t else "–"
        lines.append(
            f"| {r['dataset']} | {f['series']} | {f['mase']:.3f} | {f['mase_mean']:.3f} | "
            f"{f['mase_snaive']:.3f} | {f['mase_linear']:.3f} | "
            f"{f['mase'] / f['mase_snaive'] - 1:+.1%} | {f['mase'] / f['mase_linear'] - 1:+.1%} | "
            f"{f['rmsse']:.3f} | {f['rmsse_snaive']:.3f} | {f['rmsse_linear']:.3f} | "
            f"{pct(f['cov80'])} | {pct(f['cov95'])} | "
            f"{f['smooth_series']}: {f['smooth_mase']:.3f} vs {f['smooth_mase_snaive']:.3f} | {tot} |")
    gm = [r for r in results if "global_model" in r]
    if gm:
        lines += ["", "| demo shop | sku series | MASE, statsforecast selection: median, mean "
                  "| MASE, global gradient boosting (a mean) | its training rows "
                  "| its fit seconds |",
                  "| --- | ---: | --- | ---: | ---: | ---: |"]
        for r in gm:
            g, f = r["global_model"], r["forecast"]
            lines.append(f"| {r['dataset']} | {g['sku_series']} | {f['sku_mase']:.3f}, "
                         f"{f['sku_mase_mean']:.3f} | {g['mase']:.3f} | {g['train_rows']:,} | "
                         f"{g['fit_seconds']} |")
    lines += ["", "| demo shop | planted | found | reported | recall | precision | after the first "
              "year: recall, precision | by kind | false alarms |",
              "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |"]
    for r in results:
        a = r["anomalies"]
        if "truth" not in a:
            continue
        lines.append(
            f"| {r['dataset']} | {a['truth']} | {a['found']} | {a['reported']} | "
            f"{a['recall']:.2f} | {a['precision']:.2f} | {a['recall_after_first_year']:.2f}, "
            f"{a['precision_after_first_year']:.2f} | {a['by_kind']} | "
            f"{'; '.join(a['false'])} |")
    lines += ["", "| real data (no truth) | series-days | anomaly rows | per 1,000 series-days |",
              "| --- | ---: | ---: | ---: |"]
    for r in results:
        a = r["anomalies"]
        if "truth" in a:
            continue
        lines.append(f"| {r['dataset']} | {a['series_days']:,} | {a['rows']} | "
                     f"{a['alarms_per_1000_series_days']:.2f} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="one demo seed, 300 series for the speed test")
    parser.add_argument("--seeds", default="42,1,2,4,6,8", help="demo seeds (first: the main one)")
    parser.add_argument("--series", type=int, default=2000)
    parser.add_argument("--global-model", action="store_true",
                        help="also measure a global scikit-learn model on the demo shops' skus")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each speed measurement")
    parser.add_argument("--speed-only", action="store_true", help="only the speed measurements")
    parser.add_argument("--accuracy-only", action="store_true",
                        help="only the accuracy measurements, no speed")
    parser.add_argument("--child", choices=list(SPEED_STEPS))
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    warnings.filterwarnings("ignore")
    if args.child:
        print(json.dumps(speed_child(args.series, args.child), default=str))
        return 0

    seeds = [int(s) for s in args.seeds.split(",")]
    n_series = 300 if args.quick else args.series
    results = []
    for name, daily, product_daily, shop in ([] if args.speed_only else
                                             datasets(args.quick, seeds)):
        print(f"{name}: forecasting ...", flush=True)
        fc = evaluate_forecast(daily, product_daily)
        print(f"{name}: anomalies ...", flush=True)
        an = evaluate_anomalies(daily, product_daily, shop)
        results.append({"dataset": name, "forecast": fc, "anomalies": an})
        if args.global_model and shop is not None:
            print(f"{name}: global scikit-learn model ...", flush=True)
            results[-1]["global_model"] = global_gbm(daily, product_daily)
    runs: dict[str, list[dict]] = {}
    for round_no in range(0 if args.accuracy_only else args.rounds):
        for step in SPEED_STEPS:
            print(f"speed, round {round_no + 1}/{args.rounds}: {step} on {n_series} x 1,095 days "
                  f"in a child process ...", flush=True)
            runs.setdefault(step, []).append(run_child(
                "benchmarks/ml.py", ["--child", step, "--series", str(n_series)]))
    speed = {step: median_run(r) for step, r in runs.items()}

    lines = [f"machine: {platform.machine()}, {os.cpu_count()} cores, "
             f"Python {platform.python_version()}"]
    if results:
        lines += accuracy_report(results)
    if speed:
        sf = speed["forecast"]
        lines += ["", f"speed: {sf['series']:,} series, {sf['rows']:,} days; {args.rounds} rounds, "
                  f"median; memory: the child process and its workers, sampled together", "",
                  "| measurement | seconds (median) | all rounds | peak memory MB |",
                  "| --- | ---: | --- | ---: |"]
        for step, label in SPEED_STEPS.items():
            r = speed[step]
            lines.append(f"| {label} | {r['seconds']:.1f} | {r['all_seconds']} | "
                         f"{r['peak_tree_mb']} |")
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
