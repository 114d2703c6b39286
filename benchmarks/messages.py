"""What business users receive, measured on real shops: the whole pipeline's first run.

    .venv/bin/python benchmarks/messages.py [--shops online_retail,superstore,cdnow,demo]

For each shop: its history seeded into the emulator (canonical CSV frames, as `python -m
emulator --products ... --sales ...` seeds them), then one `salesflow materialize` for its last
day on an empty warehouse (the first run a new user makes) with the outbox mailer and
recipients for every kind. Reported per shop: the run's time, the alerts found and how the
first digest presents them (alerts in its body, attachments), every message's size and its
width in Chromium at 375 and 1024 px, the daily report PDF's pages and the reorder list.

Shops:
- online_retail: the UCI Online Retail till (4,000 products, one year), through
  emulator.online_retail; the export has no stock, so every product's stock is 0 (unknown).
- superstore: Superstore orders, four years; a product per Product ID, its category the
  Sub-Category, its price the median list price (Sales / Quantity / (1 - Discount)) and its cost
  the median (Sales - Profit) / Quantity; stock 0.
- cdnow: CDNOW purchases (customer ids), one product "CD" priced at the median CD price.
- demo: `make run`'s demo shop (seed 42, 760 days, 300 products).

Each shop runs in a child process (partitions start at the shop's first day). Messages and
reports are kept under benchmarks/.work/messages/<shop>/ to look at.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.common import report_child, run_child  # noqa: E402

DATA = Path(os.environ.get("SALESFLOW_DATA", ROOT.parent / "shared" / "data"))
if not DATA.exists():
    DATA = Path("/work/shared/data")
WORK = ROOT / "benchmarks" / ".work" / "messages"
SHOPS = ("online_retail", "superstore", "cdnow", "demo")
RECIPIENTS = {"SALESFLOW_REPORT_RECIPIENTS": "owner@shop.example",
              "SALESFLOW_ALERT_RECIPIENTS": "owner@shop.example,manager@shop.example",
              "SALESFLOW_OPS_RECIPIENTS": "ops@shop.example"}


# -- the shops as canonical frames -------------------------------------------------------------
def _unique_names(names: pd.Series, codes: pd.Series) -> pd.Series:
    dup = names.duplicated(keep=False)
    return names.where(~dup, names + " (" + codes + ")")


def online_retail():
    from emulator.online_retail import convert, read_export

    c = convert(read_export(DATA / "online_retail" / "online_retail.csv.gz"))
    return c.products, c.sales


def superstore():
    raw = pd.read_csv(DATA / "superstore" / "superstore_9994_2016-2019.csv", encoding="utf-8-sig",
                      dtype={"Order ID": str, "Product ID": str, "Customer ID": str})
    raw["list_price"] = raw["Sales"] / raw["Quantity"] / (1 - raw["Discount"])
    raw["unit_cost"] = (raw["Sales"] - raw["Profit"]) / raw["Quantity"]
    g = raw.groupby("Product ID")
    products = pd.DataFrame({
        "sku": g.size().index,
        "name": g["Product Name"].agg(lambda s: s.mode().iloc[0]).values,
        "price": g["list_price"].median().round(2).values,
        "cost": g["unit_cost"].median().clip(lower=0.01).round(2).values,
        "category": g["Sub-Category"].agg(lambda s: s.mode().iloc[0]).values,
        "stock_quantity": 0, "low_stock_threshold": 5,
    })
    # the core holds names of up to 100 characters
    products["name"] = _unique_names(products["name"].str.strip().str.slice(0, 80), products["sku"])
    order_ids = pd.factorize(raw["Order ID"])[0] + 1
    when = pd.to_datetime(raw["Order Date"], format="%m/%d/%Y") + pd.Timedelta(hours=12)
    sales = pd.DataFrame({
        "sale_id": order_ids, "sale_ts": when.dt.strftime("%Y-%m-%dT%H:%M:%S"),
        "sku": raw["Product ID"], "quantity": raw["Quantity"],
        "unit_price": (raw["Sales"] / raw["Quantity"]).round(2), "customer_id": raw["Customer ID"],
    })
    return products, sales


def cdnow():
    raw = pd.read_csv(DATA / "cdnow" / "cdnow_master.csv", dtype={"customer_id": str})
    raw = raw[(raw["number_of_cds"] > 0) & (raw["dollar_value"] > 0)]
    unit = (raw["dollar_value"] / raw["number_of_cds"]).round(2)
    products = pd.DataFrame({"sku": ["CD"], "name": ["CD"], "price": [round(float(unit.median()), 2)],
                             "cost": [None], "category": ["Music"], "stock_quantity": [0],
                             "low_stock_threshold": [1]})
    when = pd.to_datetime(raw["date"], format="%Y-%m-%d") + pd.Timedelta(hours=12)
    sales = pd.DataFrame({
        "sale_id": np.arange(1, len(raw) + 1), "sale_ts": when.dt.strftime("%Y-%m-%dT%H:%M:%S"),
        "sku": "CD", "quantity": raw["number_of_cds"].values, "unit_price": unit.values,
        "customer_id": raw["customer_id"].values,
    })
    return products, sales


def demo():
    from emulator.demo import generate_demo

    end = date(2025, 6, 30)
    shop = generate_demo(42, end - timedelta(days=759), end, n_products=300, orders_per_day=120.0)
    return shop.products, shop.sales


FRAMES = {"online_retail": online_retail, "superstore": superstore, "cdnow": cdnow, "demo": demo}


# -- one shop's first run (child process) ------------------------------------------------------
def _pdf_pages(path: Path) -> int | None:
    if shutil.which("pdfinfo") is None:
        return None
    out = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True).stdout
    found = re.search(r"^Pages:\s+(\d+)", out, re.M)
    return int(found.group(1)) if found else None


def _messages(outbox: Path, views: Path) -> list[dict]:
    sys.path.insert(0, str(ROOT / "scripts"))
    import email_view

    out = []
    for path in sorted(outbox.glob("*.eml")):
        msg = email_view.read_message(path)
        item = {"file": path.name, "subject": str(msg["Subject"]), "bytes": path.stat().st_size,
                "attachments": [p.get_filename() for p in msg.iter_attachments() if p.get_filename()],
                "html": msg.get_body(preferencelist=("html",)) is not None}
        if item["html"]:
            try:
                shown, problems = email_view.check_message(msg, views, path.stem[:60])
                item["widths"] = {v.width: v.scroll_width for v in shown}
                item["heights"] = {v.width: v.height for v in shown}
                item["problems"] = problems
            except email_view.ViewError as exc:
                item["problems"] = [str(exc)]
        out.append(item)
    return out


def child(shop: str, measure_only: bool = False) -> int:
    from dagster import DagsterInstance

    from emulator.clock import FixedClock
    from emulator.testing import running_emulator, seed_from_frames

    products, sales = FRAMES[shop]()
    ts = pd.to_datetime(sales["sale_ts"], format="%Y-%m-%dT%H:%M:%S")
    first, last = ts.min().date(), ts.max().date()
    folder = WORK / shop
    warehouse = folder / "warehouse.duckdb"
    if measure_only:
        return report_child(_measure(shop, products, sales, first, last, folder, None, None))
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    clock = FixedClock(datetime.combine(last + timedelta(days=1), datetime.min.time()) + timedelta(minutes=30))
    seed_from_frames(folder / "core.sqlite3", products, sales, clock=clock)
    with running_emulator(folder / "core.sqlite3", clock=clock) as emu:
        os.environ.update({
            "SALESFLOW_PARTITIONS_START": first.isoformat(), "SALESFLOW_TIMEZONE": "UTC",
            "SALESFLOW_CORE_URL": emu.url, "SALESFLOW_CORE_PHONE": emu.admin[0],
            "SALESFLOW_CORE_PASSWORD": emu.admin[1], "SALESFLOW_WAREHOUSE": str(warehouse),
            "SALESFLOW_HOME": str(folder), **RECIPIENTS})
        from pipelines.runner import run_daily

        started = time.perf_counter()
        with DagsterInstance.ephemeral() as instance:
            result = run_daily(as_of=last, instance=instance, warehouse_path=warehouse,
                               log_level="WARNING")
        seconds = time.perf_counter() - started
    return report_child(_measure(shop, products, sales, first, last, folder, result.success, seconds))


def _measure(shop, products, sales, first, last, folder: Path, success, seconds) -> dict:
    import duckdb

    warehouse = folder / "warehouse.duckdb"

    con = duckdb.connect(str(warehouse), read_only=True)

    def scalar(sql):
        try:
            return con.execute(sql).fetchone()[0]
        except duckdb.Error:
            return None

    facts = {
        "shop": shop, "first_day": str(first), "last_day": str(last), "products": len(products),
        "sale_lines": len(sales), "success": success, "seconds": None if seconds is None else round(seconds, 1),
        "alerts_sent": scalar("SELECT count(*) FROM ops.alerts_sent"),
        "alerts_pending": scalar("SELECT count(*) FROM ops.alerts_pending"),
        "alerts_by_kind": dict(con.execute(
            "SELECT split_part(alert_key, ':', 1), count(*) FROM ops.alerts_sent GROUP BY 1 ORDER BY 1"
        ).fetchall()) if scalar("SELECT count(*) FROM ops.alerts_sent") is not None else None,
        "reorder_rows": scalar(f"SELECT count(*) FROM marts.reorder_suggestions WHERE as_of = DATE '{last}'"),
    }
    con.close()
    pdfs = sorted((folder / "exports" / "reports").rglob("*.pdf"))
    facts["reports"] = {p.relative_to(folder / "exports" / "reports").as_posix(): _pdf_pages(p) for p in pdfs}
    facts["messages"] = _messages(folder / "exports" / "outbox", folder / "views")
    return facts


def _row(r: dict) -> str:
    digest = [m for m in r["messages"] if "alert" in m["subject"].lower()]
    daily = {k: v for k, v in r["reports"].items() if k.startswith("daily")}
    widest = max(((m.get("widths") or {}).get(375, 0) for m in r["messages"]), default=None)
    problems = sum(bool(m.get("problems")) for m in r["messages"])
    return (f"| {r['shop']} | {r['products']:,} | {r['seconds']} | {r['alerts_sent']} "
            f"| {r['alerts_by_kind']} | {len(digest)} | "
            f"{', '.join(str(d['bytes'] // 1024) + ' KB' for d in digest) or '-'} | "
            f"{max(daily.values(), default=None)} | {r['reorder_rows']} | {len(r['messages'])} "
            f"| {widest} | {problems} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shops", default=",".join(SHOPS))
    parser.add_argument("--measure-only", action="store_true",
                        help="measure the messages of the last run again without running")
    parser.add_argument("--child")
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child, args.measure_only)
    rows = []
    for shop in args.shops.split(","):
        print(f"{shop}: first run ...", file=sys.stderr, flush=True)
        result = run_child(__file__, ["--child", shop] + (["--measure-only"] if args.measure_only else []))
        (WORK / f"{shop}.json").write_text(json.dumps(result, indent=1, default=str))
        rows.append(result)
    print("| shop | products | first run s | alerts sent | by kind | digests | digest size "
          "| daily PDF pages | reorder rows | messages | widest at 375 px | messages with problems |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(_row(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
