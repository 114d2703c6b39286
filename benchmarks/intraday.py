"""What "today, as it happens" costs: an intraday refresh, and a sensor poll with nothing new.

    .venv/bin/python benchmarks/intraday.py [--shops demo,online_retail] [--rounds 7]

Per shop, in a child process: the emulator is seeded with the shop's history (the core's clock
on the day after its last sale), the warehouse is loaded by ``run_daily`` up to that last day,
then the day trades: sales are posted through ``POST /api/v1/sales`` from 09:00 every few
minutes up to 14:00 (the emulator's clock is moved for each). Then, at 14:00:

- the intraday refresh, median of ``--rounds``: bare ``salesflow.intraday.refresh_today``
  (a new logged-in client each time, as a run has) and ``pipelines.runner.run_today`` (the
  whole ``intraday_job`` in process on an ephemeral instance), with requests per refresh;
- a poll of ``core_sales_sensor`` with nothing new: requests (the emulator's own count), bytes
  received and milliseconds, median of 20 polls after the first;
- the sensor's requests per day at the default interval (polls, plus a login when its token
  nears expiry), and at most with a run after every poll.

Prints a markdown table. Shops: ``demo`` (make run's demo shop: seed 42, 760 days, 300
products, about 120 orders a day) and ``online_retail`` (the UCI Online Retail till, 4,000
products; its export has no stock, so the products sold today are restocked first).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.common import report_child, run_child  # noqa: E402

WORK = ROOT / "benchmarks" / ".work" / "intraday"
SHOPS = ("demo", "online_retail")
SALES_TODAY = 60  # 09:00 to 14:00, one every 5 minutes
POLLS = 20


def _post_todays_sales(emu, products, day) -> list[str]:
    """SALES_TODAY sales through the API, stamped 09:00, 09:05, ... by the emulator's clock."""
    from salesflow.core_client import CoreClient

    skus = list(products["sku"].iloc[:20])
    with CoreClient(emu.url, *emu.admin) as client:
        for sku in skus:  # enough stock for the day (Online Retail's export has none)
            product = client.get_json(f"/products/by-sku/{sku}")
            if product["stockQuantity"] < 100:
                product["stockQuantity"] = 1000
                client.put_json(f"/products/by-sku/{sku}", product)
        for i in range(SALES_TODAY):
            emu.clock.set(datetime.combine(day, datetime.min.time()) + timedelta(hours=9, minutes=5 * i))
            items = [{"sku": skus[(i + k) % len(skus)], "quantity": 1 + k} for k in range(1 + i % 3)]
            client.post_json("/sales", {"items": items})
    return skus


def child(shop: str, rounds: int) -> int:
    import pandas as pd
    from dagster import DagsterInstance, build_sensor_context

    from benchmarks.messages import FRAMES
    from emulator.clock import FixedClock
    from emulator.testing import running_emulator, seed_from_frames

    products, sales = FRAMES[shop]()
    ts = pd.to_datetime(sales["sale_ts"], format="%Y-%m-%dT%H:%M:%S")
    first, last = ts.min().date(), ts.max().date()
    today = last + timedelta(days=1)
    folder = WORK / shop
    folder.mkdir(parents=True, exist_ok=True)
    for stale in ("core.sqlite3", "warehouse.duckdb", "warehouse.duckdb.wal"):
        (folder / stale).unlink(missing_ok=True)
    warehouse = folder / "warehouse.duckdb"
    clock = FixedClock(datetime.combine(today, datetime.min.time()) + timedelta(minutes=30))
    seed_from_frames(folder / "core.sqlite3", products, sales, clock=clock)
    os.environ.update({"SALESFLOW_PARTITIONS_START": first.isoformat(), "SALESFLOW_TIMEZONE": "UTC",
                       "SALESFLOW_WAREHOUSE": str(warehouse), "SALESFLOW_HOME": str(folder)})
    with running_emulator(folder / "core.sqlite3", clock=clock) as emu:
        os.environ.update({"SALESFLOW_CORE_URL": emu.url, "SALESFLOW_CORE_PHONE": emu.admin[0],
                           "SALESFLOW_CORE_PASSWORD": emu.admin[1]})
        from pipelines.runner import run_daily, run_today
        from resources import CoreApiResource
        from salesflow.core_client import CoreClient
        from salesflow.intraday import refresh_today
        from salesflow.warehouse import connect
        from sensors import core_sales

        started = time.perf_counter()
        with DagsterInstance.ephemeral() as instance:
            loaded = run_daily(as_of=last, instance=instance, warehouse_path=warehouse,
                               log_level="WARNING", reports=False)
        load_seconds = time.perf_counter() - started
        assert loaded.success, loaded.summary()
        _post_todays_sales(emu, products, today)
        emu.clock.set(datetime.combine(today, datetime.min.time()) + timedelta(hours=14))
        log = emu.app.state.faults.plan(None, path="", times=10**9)  # counts every request

        bare, bare_requests, bare_bytes = [], [], []
        for _ in range(rounds):
            seen = log.seen
            t = time.perf_counter()
            with connect(warehouse) as con, CoreClient(emu.url, *emu.admin) as client, \
                    tempfile.TemporaryDirectory() as tmp:
                result = refresh_today(client, con, workdir=Path(tmp))
            bare.append(time.perf_counter() - t)
            bare_requests.append(log.seen - seen)
            bare_bytes.append(result.download_bytes)
        assert result.reconciled and result.row.today.orders == SALES_TODAY, result.differences

        runs, run_requests = [], []
        for _ in range(rounds):
            seen = log.seen
            t = time.perf_counter()
            with DagsterInstance.ephemeral() as instance:
                summary = run_today(instance=instance, warehouse_path=warehouse, log_level="WARNING")
            runs.append(time.perf_counter() - t)
            run_requests.append(log.seen - seen)
            assert summary.success, summary.summary()

        core = CoreApiResource(base_url=emu.url, phone=emu.admin[0], password=emu.admin[1])
        sensor = core_sales.build_core_sales_sensor()
        cursor = None
        poll_ms, poll_requests, poll_bytes, requested = [], [], [], []
        for i in range(POLLS + 1):
            seen = log.seen
            client = core_sales._clients.get((core.base_url, core.phone))
            received = client.stats.bytes_received if client else 0
            t = time.perf_counter()
            data = sensor.evaluate_tick(build_sensor_context(cursor=cursor, resources={"core": core}))
            ms = (time.perf_counter() - t) * 1000
            cursor = data.cursor or cursor
            client = core_sales._clients[(core.base_url, core.phone)]
            if i:  # the first poll logs in and finds the day's sales new
                poll_ms.append(ms)
                poll_requests.append(log.seen - seen)
                poll_bytes.append(client.stats.bytes_received - received)
                requested.append(len(data.run_requests or []))
        token_s = 3600  # the core's default access-token lifetime
        relogin_every = token_s - min(30, token_s / 4)
        polls_per_day = 86400 / core_sales.DEFAULT_POLL_SECONDS
        logins_per_day = 86400 / relogin_every
    return report_child({
        "shop": shop, "products": len(products), "history_sales": int(sales["sale_id"].nunique()),
        "load_seconds": round(load_seconds, 1), "sales_today": SALES_TODAY,
        "today_bytes": statistics.median(bare_bytes),
        "refresh_s": round(statistics.median(bare), 3), "refresh_all": [round(x, 3) for x in bare],
        "refresh_requests": statistics.median(bare_requests),
        "run_today_s": round(statistics.median(runs), 3), "run_today_all": [round(x, 3) for x in runs],
        "run_today_requests": statistics.median(run_requests),
        "poll_ms": round(statistics.median(poll_ms), 1), "poll_requests": max(poll_requests),
        "poll_bytes": statistics.median(poll_bytes), "poll_runs_requested": sum(requested),
        "sensor_requests_per_day": round(polls_per_day + logins_per_day),
        "requests_per_day_with_a_run_every_poll": round(polls_per_day + logins_per_day
                                                        + polls_per_day * statistics.median(run_requests)),
    })


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shops", default=",".join(SHOPS))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--child")
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child, args.rounds)
    rows = []
    for shop in args.shops.split(","):
        print(f"{shop}: loading the warehouse, then measuring ...", file=sys.stderr, flush=True)
        result = run_child(__file__, ["--child", shop, "--rounds", str(args.rounds)])
        WORK.mkdir(parents=True, exist_ok=True)
        (WORK / f"{shop}.json").write_text(json.dumps(result, indent=1, default=str))
        rows.append(result)
    print("| shop | history sales | sales today | /sales/today bytes | refresh_today s (median) "
          "| run_today s (median) | requests per refresh | poll with nothing new: requests, bytes, ms "
          "| runs requested by 20 quiet polls | sensor requests/day (300 s) | with a run after every poll |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['shop']} | {r['history_sales']:,} | {r['sales_today']} | {r['today_bytes']:,} "
              f"| {r['refresh_s']} {r['refresh_all']} | {r['run_today_s']} {r['run_today_all']} "
              f"| {r['refresh_requests']} (run: {r['run_today_requests']}) "
              f"| {r['poll_requests']}, {r['poll_bytes']:,}, {r['poll_ms']} "
              f"| {r['poll_runs_requested']} | {r['sensor_requests_per_day']} "
              f"| {r['requests_per_day_with_a_run_every_poll']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
