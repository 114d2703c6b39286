"""Extraction benchmark: 1M sale lines in the emulator, full and incremental, against the floor.

    .venv/bin/python benchmarks/extract.py            # builds the shop once under benchmarks/.work/

Every measurement runs in a fresh child process (so peak memory is its own), one after the
other, against one emulator process serving the same state:

- floor (DuckDB): fetch the full listing and decode it with DuckDB's JSON reader into memory,
  without writing anything: the same fetch and decoder the pipeline uses.
- floor (msgspec): fetch + decode into typed Python objects, the fastest pure-Python decode.
- full extraction: what the raw/sales asset does (fetch, validate, write raw.sales and
  raw.sale_items in one transaction, reconcile, check) into a fresh warehouse.
- incremental: the next daily run on top of that history (/sales/history?days=2).
- dagster full / incremental: the same two as Dagster runs of the daily job (all extract
  assets, partitions, checks and event log), timed inside a warm process.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from common import ROOT, median_run, report_child, run_child
WORK = ROOT / "benchmarks" / ".work"
CLOCK = "2025-07-01"  # the emulator's today; the history ends the day before
AS_OF = date(2025, 6, 30)
SHOP = dict(seed=1, days=760, products=1000, orders_per_day=560)


def client(url: str):
    from salesflow.core_client import CoreClient

    return CoreClient(url, os.environ["SALESFLOW_CORE_PHONE"], os.environ["SALESFLOW_CORE_PASSWORD"],
                      timeout_s=120)


# -- child steps -------------------------------------------------------------------------
def step_floor_duckdb(url: str, warehouse: Path) -> dict:
    import duckdb

    from salesflow.extract import SALES_JSON_COLUMNS

    with tempfile.TemporaryDirectory() as tmp, client(url) as c:
        t0 = time.perf_counter()
        d = c.download("/sales", Path(tmp) / "sales.json")
        con = duckdb.connect()
        con.execute(f"CREATE TEMP TABLE s AS SELECT * FROM read_json(?, format='array', "
                    f"columns={SALES_JSON_COLUMNS})", [str(d.path)])
        lines = con.execute("SELECT sum(len(items)) FROM s").fetchone()[0]
        seconds = time.perf_counter() - t0
    return {"lines": int(lines), "seconds": seconds, "bytes": d.bytes, "download_seconds": d.seconds}


def step_floor_msgspec(url: str, warehouse: Path) -> dict:
    import msgspec

    from salesflow.core_models import Sale

    with tempfile.TemporaryDirectory() as tmp, client(url) as c:
        t0 = time.perf_counter()
        d = c.download("/sales", Path(tmp) / "sales.json")
        sales = msgspec.json.decode(d.path.read_bytes(), type=list[Sale])
        lines = sum(len(s.items) for s in sales)
        seconds = time.perf_counter() - t0
    return {"lines": lines, "seconds": seconds, "bytes": d.bytes}


def _extract(url: str, warehouse: Path, start: date) -> dict:
    from salesflow.extract import extract_sales
    from salesflow.warehouse import connect

    with tempfile.TemporaryDirectory() as tmp, client(url) as c, connect(warehouse) as con:
        t0 = time.perf_counter()
        r = extract_sales(c, con, start, AS_OF, workdir=Path(tmp))
        seconds = time.perf_counter() - t0
        # raw.products is not loaded here, so only the checks on sales themselves apply
        assert not r.differences and all(v["passed"] for k, v in r.checks.items() if k != "sold_skus_known")
    return {"lines": r.staged.lines, "written_lines": r.written.lines, "seconds": seconds,
            "bytes": r.download_bytes, "source": r.plan.path + (f"?days={r.plan.days}" if r.plan.days else "")}


def step_full(url: str, warehouse: Path) -> dict:
    warehouse.unlink(missing_ok=True)
    return _extract(url, warehouse, date(2023, 6, 1))


def step_incremental(url: str, warehouse: Path) -> dict:
    return _extract(url, warehouse, AS_OF)


def step_dagster(url: str, warehouse: Path) -> dict:
    import dagster as dg

    from pipelines.runner import run_daily

    out = {}
    warehouse.unlink(missing_ok=True)
    with dg.DagsterInstance.ephemeral() as instance:
        for name in ("full", "incremental"):
            t0 = time.perf_counter()
            r = run_daily(as_of=AS_OF, instance=instance, warehouse_path=warehouse)
            assert r.success, r.summary()
            step = _step_seconds(instance, r.run_id, "raw_sales")
            out[name] = {"run_seconds": time.perf_counter() - t0, "raw_sales_step_seconds": step,
                         "range": f"{r.start}..{r.end}"}
    return out


def _step_seconds(instance, run_id: str, step_key: str) -> float:
    import dagster as dg

    records = instance.all_logs(run_id)
    times = {}
    for ev in records:
        if ev.step_key == step_key and ev.dagster_event is not None:
            if ev.dagster_event.event_type == dg.DagsterEventType.STEP_START:
                times["start"] = ev.timestamp
            elif ev.dagster_event.event_type == dg.DagsterEventType.STEP_SUCCESS:
                times["end"] = ev.timestamp
    return times["end"] - times["start"]


STEPS = {"floor_duckdb": step_floor_duckdb, "floor_msgspec": step_floor_msgspec,
         "full": step_full, "incremental": step_incremental, "dagster": step_dagster}


# -- orchestration -----------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_state() -> Path:
    WORK.mkdir(parents=True, exist_ok=True)
    state = WORK / "core-1m.sqlite3"
    if not state.exists():
        print("building the 1M-line demo shop ...", flush=True)
        subprocess.run(
            [sys.executable, "-m", "emulator", "--state", str(state), "--demo",
             "--seed", str(SHOP["seed"]), "--demo-days", str(SHOP["days"]),
             "--demo-products", str(SHOP["products"]),
             "--demo-orders-per-day", str(SHOP["orders_per_day"]), "--clock", CLOCK, "--no-serve"],
            check=True, cwd=ROOT,
        )
    return state


def child(name: str, url: str, warehouse: Path, env: dict) -> dict:
    return run_child(__file__, ["--child", name, "--url", url, "--warehouse", str(warehouse)], env)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", choices=sorted(STEPS))
    parser.add_argument("--url")
    parser.add_argument("--warehouse", type=Path)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (median reported)")
    args = parser.parse_args()
    if args.child:
        return report_child(STEPS[args.child](args.url, args.warehouse))

    sys.path.insert(0, str(ROOT))
    state = build_state()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SALESFLOW_CORE_URL": url,
           "SALESFLOW_PARTITIONS_START": "2023-06-01"}
    env.setdefault("SALESFLOW_CORE_PHONE", "+15550000001")
    env.setdefault("SALESFLOW_CORE_PASSWORD", "salesflow-demo-admin")
    env.pop("DAGSTER_HOME", None)
    emulator = subprocess.Popen(
        [sys.executable, "-m", "emulator", "--state", str(state), "--port", str(port), "--clock", CLOCK],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    try:
        import httpx

        for _ in range(200):
            try:
                httpx.get(f"{url}/api/v1/products", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        warehouse = WORK / "bench.duckdb"
        runs: dict[str, list[dict]] = {}
        # Rounds alternate the floor and the extraction so that machine noise hits both alike;
        # each figure is the median round.
        for round_no in range(args.rounds):
            for name in ("floor_duckdb", "floor_msgspec", "full", "incremental"):
                print(f"round {round_no + 1}/{args.rounds}: {name} ...", flush=True)
                runs.setdefault(name, []).append(child(name, url, warehouse, env))
        results = {name: median_run(rs) for name, rs in runs.items()}
        print("dagster runs ...", flush=True)
        results["dagster"] = child("dagster", url, warehouse, env)
    finally:
        emulator.terminate()
        emulator.wait()

    fd, fm, full, inc, dag = (results[k] for k in ("floor_duckdb", "floor_msgspec", "full", "incremental", "dagster"))
    rate = lambda r: r["lines"] / r["seconds"]  # noqa: E731
    lines = [
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.platform()}",
        f"shop: {full['lines']:,} sale lines, {full['bytes'] / 1e6:.1f} MB listing",
        "",
        "| measurement | seconds (median) | all rounds | lines/s | peak RSS MB | bytes fetched |",
        "| --- | ---: | --- | ---: | ---: | ---: |",
    ]
    for label, r in (("floor: fetch + DuckDB decode", fd), ("floor: fetch + msgspec decode", fm),
                     ("full extraction (raw/sales logic)", full), ("incremental day (raw/sales logic)", inc)):
        lines.append(f"| {label} | {r['seconds']:.2f} | {r['all_seconds']} | {rate(r):,.0f} | "
                     f"{r['peak_rss_mb']:.0f} | {r['bytes']:,} |")
    lines += [
        "",
        f"full extraction rate / floor (DuckDB decode): {rate(full) / rate(fd):.0%}",
        f"full extraction rate / floor (msgspec decode): {rate(full) / rate(fm):.0%}",
        f"incremental / full: time {inc['seconds'] / full['seconds']:.2%}, bytes {inc['bytes'] / full['bytes']:.3%}",
        "",
        "Dagster runs of the daily job (in one warm process, ephemeral instance):",
        f"- full history {dag['full']['range']}: run {dag['full']['run_seconds']:.2f} s, "
        f"raw_sales step {dag['full']['raw_sales_step_seconds']:.2f} s",
        f"- next day {dag['incremental']['range']}: run {dag['incremental']['run_seconds']:.2f} s, "
        f"raw_sales step {dag['incremental']['raw_sales_step_seconds']:.2f} s "
        f"({dag['incremental']['run_seconds'] / dag['full']['run_seconds']:.1%} of the full run)",
        f"- peak RSS of that process: {dag['peak_rss_mb']:.0f} MB",
    ]
    report = "\n".join(lines)
    print(report)
    (WORK / "extract-latest.md").write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
