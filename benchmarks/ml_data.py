"""The forecast benchmark's datasets, as the marts' daily frames, cached under ``benchmarks/.work``.

Each dataset is a pair ``(daily, product_daily)`` as ``salesflow.datasets.daily_frames`` builds
it from sale lines (the frames ``marts.daily_sales`` and ``marts.product_daily_sales`` hold), so
the benchmark's series come from ``salesflow.forecast.build_series`` exactly as the assets'
do:

* ``online_retail``: the UCI "Online Retail" export of a UK gift shop
  (``/work/shared/data/online_retail``), converted by ``emulator.online_retail.convert`` into
  the emulator's canonical sales, then read the way seeding reads them: a line repeating an
  earlier line in every column is kept once, and a sale is dated by its earliest line.
  2010-12-01 .. 2011-12-09, about 4,000 products, mostly intermittent, no trading on Saturdays.
* ``online_retail_top200``: the same shop with the 200 products that sold on the most days
  before 2011-08-12 (the earlier origin of ``--quick``); ``TOTAL`` is still the whole shop.
* ``superstore_subcat`` / ``superstore_cat``: Superstore orders per sub-category (17) and per
  category (3), 2016-01-03 .. 2019-12-30.
* ``cdnow``: CDNOW purchases, the shop's revenue and its units (one sku ``CD``),
  1997-01-01 .. 1998-06-30.
* ``demo``: the emulator's demo shop as ``make run`` builds it (seed 42, 760 days to
  2025-06-30, 300 products, 120 orders a day).

Frames are stored as parquet in ``benchmarks/.work/data`` and rebuilt when the source file
changes (size or modification time) or when ``DATA_VERSION`` changes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work"
DATA = Path("/work/shared/data")
ONLINE_RETAIL = DATA / "online_retail" / "online_retail.csv.gz"
SUPERSTORE = DATA / "superstore" / "superstore_9994_2016-2019.csv"
CDNOW = DATA / "cdnow" / "cdnow_master.csv"
DEMO = dict(seed=42, days=760, products=300, orders_per_day=120.0, end=date(2025, 6, 30))
TOP_PRODUCTS = 200
TOP_BEFORE = pd.Timestamp("2011-08-12")
DATA_VERSION = 1


@dataclass(frozen=True)
class Dataset:
    slug: str
    name: str
    daily: pd.DataFrame
    product_daily: pd.DataFrame
    #: what the product series count ("units") and whether it is a real shop's data
    real: bool = True


NAMES = {
    "online_retail": "Online Retail",
    "online_retail_top200": f"Online Retail, top {TOP_PRODUCTS} products",
    "superstore_subcat": "Superstore, per sub-category",
    "superstore_cat": "Superstore, per category",
    "cdnow": "CDNOW",
    "demo": f"demo shop, seed {DEMO['seed']}",
}


# --------------------------------------------------------------------------- sources

def demo_shop(seed: int = DEMO["seed"]):
    """``(daily, product_daily, shop)`` of the demo shop of ``seed`` (``make run``'s is 42)."""
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


def online_retail_lines(path: Path = ONLINE_RETAIL) -> pd.DataFrame:
    """Sale lines of the Online Retail export, through the emulator's canonical sales: exact
    repeats of a line kept once, each sale dated by its earliest line (as seeding does)."""
    from emulator.online_retail import convert, read_export

    sales = convert(read_export(path)).sales.drop_duplicates()
    ts = pd.to_datetime(sales["sale_ts"], format="%Y-%m-%dT%H:%M:%S")
    day = ts.groupby(sales["sale_id"]).transform("min").dt.normalize()
    qty = sales["quantity"].astype(int)
    return pd.DataFrame({
        "sale_date": day, "sale_id": sales["sale_id"].astype(str), "sku": sales["sku"].astype(str),
        "quantity": qty, "revenue": (qty * sales["unit_price"].astype(float)).round(2),
    })


def _build(slug: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    from salesflow.datasets import daily_frames, read_cdnow, read_superstore

    if slug == "online_retail":
        return daily_frames(online_retail_lines())
    if slug == "online_retail_top200":
        daily, product_daily = load("online_retail")
        before = product_daily[pd.to_datetime(product_daily["sale_date"]) < TOP_BEFORE]
        days = before.groupby("sku").size().sort_values(ascending=False, kind="stable")
        top = set(days.index[:TOP_PRODUCTS])
        return daily, product_daily[product_daily["sku"].isin(top)].reset_index(drop=True)
    if slug == "superstore_subcat":
        return daily_frames(read_superstore(SUPERSTORE, sku_column="Sub-Category"))
    if slug == "superstore_cat":
        return daily_frames(read_superstore(SUPERSTORE, sku_column="Category"))
    if slug == "cdnow":
        return daily_frames(read_cdnow(CDNOW))
    if slug == "demo":
        daily, product_daily, _ = demo_shop(DEMO["seed"])
        return daily, product_daily
    raise ValueError(f"unknown dataset {slug!r}; known: {', '.join(NAMES)}")


def _source_stamp(slug: str) -> dict:
    path = {"online_retail": ONLINE_RETAIL, "online_retail_top200": ONLINE_RETAIL,
            "superstore_subcat": SUPERSTORE, "superstore_cat": SUPERSTORE,
            "cdnow": CDNOW}.get(slug)
    stamp: dict = {"version": DATA_VERSION}
    if path is not None:
        st = path.stat()
        stamp.update(source=str(path), size=st.st_size, mtime=int(st.st_mtime))
    else:
        stamp.update(DEMO, end=str(DEMO["end"]))
    return stamp


def load(slug: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(daily, product_daily)`` of a dataset, from the cache when it is current."""
    folder = WORK / "data"
    stamp_file = folder / f"{slug}.json"
    files = folder / f"{slug}-daily.parquet", folder / f"{slug}-product_daily.parquet"
    stamp = _source_stamp(slug)
    if stamp_file.exists() and all(f.exists() for f in files):
        if json.loads(stamp_file.read_text()) == stamp:
            return tuple(pd.read_parquet(f) for f in files)  # type: ignore[return-value]
    daily, product_daily = _build(slug)
    folder.mkdir(parents=True, exist_ok=True)
    daily.to_parquet(files[0], index=False)
    product_daily.to_parquet(files[1], index=False)
    stamp_file.write_text(json.dumps(stamp))
    return daily, product_daily


def dataset(slug: str) -> Dataset:
    daily, product_daily = load(slug)
    return Dataset(slug, NAMES[slug], daily, product_daily, real=slug != "demo")
