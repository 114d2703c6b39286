"""The daily run of the ML assets (forecasts and anomalies) on the demo shop, timed.

    .venv/bin/python benchmarks/ml_daily.py [--rounds 3] [--n-jobs 1] [--seed 42]

The warehouse is the demo shop of ``make run`` (seed 42, 760 days to 2025-06-30, 300 products,
120 orders a day), written straight into the marts the assets read (``marts.daily_sales``,
``marts.product_daily_sales``; ``raw.products``, ``raw.inventory`` and one stock snapshot a day
for the last 60 days), without the emulator and the extraction, which are benchmarked
elsewhere. Each round, on a fresh copy of that warehouse, materializes ``ml/sales_forecast``,
``ml/forecast_backtest`` and ``ml/sales_anomalies`` with ``dagster.materialize`` (in process,
an ephemeral instance) for three days:

1. ``E - 7`` (first run: every series is selected; not counted below);
2. ``E - 6``: **the day after a selection**: every series reuses its selection, the chosen
   models are refitted on the new day (``predict``);
3. ``E``: **a selection day**: the selections are 7 days old (the default cadence), every
   series is selected again (backtest of every candidate, then ``predict``).

Printed per day: the wall time of the whole ``materialize`` call (Dagster's own overhead
included) and of the forecast and anomaly steps (from their step events), the median of
``--rounds`` rounds, and what the selection did (re-selected / reused). The target of the
project is a daily run under 5 s. Results also land in ``benchmarks/.work/ml-daily-latest.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEMO = dict(seed=42, days=760, products=300, orders_per_day=120.0, end=date(2025, 6, 30))
START = DEMO["end"] - timedelta(days=DEMO["days"] - 1)
# partitions must reach back to the demo shop's history (read when the assets are imported)
os.environ["SALESFLOW_PARTITIONS_START"] = START.isoformat()
os.environ.setdefault("SALESFLOW_TIMEZONE", "UTC")
os.environ.pop("SALESFLOW_FORECAST_RESELECT_DAYS", None)


def build_warehouse(path: Path, seed: int) -> dict:
    """The demo shop's marts, catalogue and recent stock snapshots in a new warehouse at ``path``."""
    import numpy as np
    import pandas as pd

    from emulator.demo import generate_demo
    from salesflow.datasets import daily_frames
    from salesflow.warehouse import connect, registered

    end = DEMO["end"]
    shop = generate_demo(seed, START, end, n_products=DEMO["products"],
                         orders_per_day=DEMO["orders_per_day"])
    s = shop.sales
    lines = pd.DataFrame({
        "sale_date": s["sale_ts"].dt.normalize(), "sale_id": s["sale_id"], "sku": s["sku"],
        "quantity": s["quantity"], "revenue": (s["quantity"] * s["unit_price"]).round(2),
    })
    daily, product_daily = daily_frames(lines, START, end)
    daily = daily.assign(sale_date=daily["sale_date"].dt.date, cost=0.0, gross_profit=0.0,
                         revenue_with_cost=0.0, identified_orders=daily["orders"])
    product_daily = product_daily.assign(sale_date=pd.to_datetime(product_daily["sale_date"]).dt.date)
    p = shop.products
    products = pd.DataFrame({"id": np.arange(1, len(p) + 1), "sku": p["sku"], "name": p["name"],
                             "price": p["price"], "stock_quantity": p["stock_quantity"],
                             "low_stock_threshold": p["low_stock_threshold"]})
    inventory = pd.DataFrame({"sku": p["sku"], "name": p["name"], "category": p["category"],
                              "cost": p["cost"], "price": p["price"], "quantity": p["stock_quantity"]})
    snaps = pd.concat([pd.DataFrame({"snapshot_date": end - timedelta(days=k), "sku": p["sku"],
                                     "stock_quantity": p["stock_quantity"],
                                     "low_stock_threshold": p["low_stock_threshold"]})
                       for k in range(60)], ignore_index=True)
    with connect(path) as con, registered(con, _d=daily, _p=product_daily, _products=products,
                                          _inv=inventory, _snaps=snaps):
        con.execute("INSERT INTO marts.daily_sales BY NAME SELECT * FROM _d")
        con.execute("INSERT INTO marts.product_daily_sales BY NAME SELECT * FROM _p")
        con.execute("INSERT INTO raw.products BY NAME SELECT * FROM _products")
        con.execute("INSERT INTO raw.inventory BY NAME SELECT * FROM _inv")
        con.execute("INSERT INTO raw.stock_snapshots BY NAME SELECT * FROM _snaps")
    return {"days": len(daily), "skus": int(product_daily["sku"].nunique()), "products": len(p)}


def run_day(path: Path, day: date, n_jobs: int) -> dict:
    import dagster as dg

    from assets.ml import ml_assets
    from resources import WarehouseResource

    config = {"ops": {"forecasts": {"config": {"n_jobs": n_jobs}}},
              "loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    t0 = time.perf_counter()
    result = dg.materialize(ml_assets, partition_key=day.isoformat(), run_config=config,
                            resources={"warehouse": WarehouseResource(database=str(path))})
    seconds = time.perf_counter() - t0
    assert result.success
    steps = {}
    for ev in result.all_events:
        if ev.event_type_value == "STEP_SUCCESS":
            steps[ev.step_key] = ev.event_specific_data.duration_ms / 1000
    meta = {}
    for m in result.asset_materializations_for_node("forecasts"):
        if m.asset_key.path == ["ml", "sales_forecast"]:
            meta = {k: v.value for k, v in m.metadata.items() if k in ("selection", "coverage", "series")}
    return {"seconds": seconds, "forecast_step_s": steps.get("forecasts"),
            "anomalies_step_s": steps.get("ml__sales_anomalies", steps.get("sales_anomalies")), **meta}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--n-jobs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=DEMO["seed"])
    args = ap.parse_args()
    end = DEMO["end"]
    days = {"first run (selection)": end - timedelta(days=7),
            "day after a selection (reuse)": end - timedelta(days=6),
            "selection day (7 days later)": end}
    with tempfile.TemporaryDirectory(prefix="ml-daily-") as tmp:
        base = Path(tmp) / "base.duckdb"
        t0 = time.perf_counter()
        shape = build_warehouse(base, args.seed)
        print(f"demo shop seed {args.seed}: {shape['days']} days, {shape['products']} products, "
              f"{shape['skus']} sold; warehouse built in {time.perf_counter() - t0:.1f} s", flush=True)
        runs: dict[str, list[dict]] = {k: [] for k in days}
        for r in range(args.rounds):
            path = Path(tmp) / f"round-{r}.duckdb"
            shutil.copy(base, path)
            for label, day in days.items():
                out = run_day(path, day, args.n_jobs)
                runs[label].append(out)
                print(f"round {r + 1} {day} {label}: {out['seconds']:.2f} s (forecast step "
                      f"{out['forecast_step_s']:.2f} s, anomalies step {out['anomalies_step_s']:.2f} s)",
                      flush=True)
    print(f"\nmedian of {args.rounds} rounds, n_jobs={args.n_jobs}, {os.cpu_count()} cpus "
          "(materialize wall time includes Dagster's run overhead):")
    print("| day | materialize (s) | forecast step (s) | anomalies step (s) | series | selection |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    summary = {}
    for label, rs in runs.items():
        med = {k: statistics.median(r[k] for r in rs) for k in ("seconds", "forecast_step_s",
                                                                "anomalies_step_s")}
        sel = rs[-1].get("selection", {})
        what = f"re-selected {sel.get('reselected')}, reused {sel.get('reused')}"
        print(f"| {label} | {med['seconds']:.2f} | {med['forecast_step_s']:.2f} | "
              f"{med['anomalies_step_s']:.2f} | {rs[-1].get('series')} | {what} |")
        summary[label] = {**med, "all_seconds": [round(r["seconds"], 2) for r in rs],
                          "selection": sel, "coverage": rs[-1].get("coverage")}
    print(f"\ncoverage of the catalogue: {summary[list(days)[-1]]['coverage']}")
    out = ROOT / "benchmarks" / ".work"
    out.mkdir(parents=True, exist_ok=True)
    (out / "ml-daily-latest.json").write_text(json.dumps(
        {"seed": args.seed, "rounds": args.rounds, "n_jobs": args.n_jobs, "results": summary}, indent=2,
        default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
