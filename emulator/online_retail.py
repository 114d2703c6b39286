"""The UCI "Online Retail" export as the emulator's canonical CSVs.

``python -m emulator.online_retail online_retail.csv.gz OUT_DIR [--rows N]`` writes
``OUT_DIR/products.csv`` and ``OUT_DIR/sales.csv``, ready for ``python -m emulator --products
OUT_DIR/products.csv --sales OUT_DIR/sales.csv``.

The till's lines are kept as they are, quirks included: lines of one invoice stamped a minute
apart and lines printed twice (seeding stamps a sale with its earliest line and keeps a
repeated line once). What the core cannot hold is left out and counted: cancellations
(``InvoiceNo`` starting with ``C``), quantities below 1 and negative prices.

Products: one per ``StockCode``, named by its most frequent description (the code when it
has none; ``name (code)`` when two codes share a description, as the core's names are unique),
priced at its last unit price, with today's stock unknown (0) and no cost.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from emulator.seed import PRODUCT_COLUMNS, SALES_COLUMNS

COLUMNS = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID"]


@dataclass(frozen=True)
class Conversion:
    products: pd.DataFrame
    sales: pd.DataFrame
    lines_read: int
    cancellations: int
    unsellable: int  #: lines with a quantity below 1 or a negative price


def read_export(path: str | Path, rows: int | None = None) -> pd.DataFrame:
    """The export's lines as text (the first ``rows`` lines when given)."""
    return pd.read_csv(path, usecols=COLUMNS, dtype=str, keep_default_na=False, nrows=rows,
                       encoding="utf-8-sig")


def _names(lines: pd.DataFrame) -> pd.Series:
    described = lines[lines["Description"].str.strip() != ""]
    common = (described.groupby(["StockCode", "Description"]).size().rename("n").reset_index()
              .sort_values(["StockCode", "n", "Description"], ascending=[True, False, True])
              .drop_duplicates("StockCode").set_index("StockCode")["Description"].str.strip())
    codes = pd.Index(lines["StockCode"].unique())
    names = pd.Series(codes, index=codes).where(~codes.isin(common.index), common.reindex(codes))
    shared = names.duplicated(keep=False)
    names[shared] = names[shared].str.slice(0, 80) + " (" + names.index[shared] + ")"
    return names.str.slice(0, 100)


def convert(raw: pd.DataFrame) -> Conversion:
    """Canonical products and sales frames of the export's lines (see the module docstring)."""
    lines = raw.assign(**{c: raw[c].str.strip() for c in COLUMNS})
    cancelled = lines["InvoiceNo"].str.startswith("C")
    qty = pd.to_numeric(lines["Quantity"], errors="coerce")
    price = pd.to_numeric(lines["UnitPrice"], errors="coerce")
    sellable = (qty >= 1) & (price >= 0) & (lines["StockCode"] != "")
    kept = lines[~cancelled & sellable].reset_index(drop=True)
    stamps = pd.to_datetime(kept["InvoiceDate"], format="mixed")
    names = _names(kept)
    last_price = kept.assign(_ts=stamps).sort_values("_ts", kind="stable") \
        .drop_duplicates("StockCode", keep="last").set_index("StockCode")["UnitPrice"]
    products = pd.DataFrame({
        "sku": names.index, "name": names.to_numpy(), "price": last_price.reindex(names.index).to_numpy(),
        "cost": "", "category": "", "stock_quantity": "0", "low_stock_threshold": "",
    })[list(PRODUCT_COLUMNS)]
    sales = pd.DataFrame({
        "sale_id": kept["InvoiceNo"],
        "sale_ts": stamps.dt.strftime("%Y-%m-%dT%H:%M:%S"),
        "sku": kept["StockCode"],
        "quantity": kept["Quantity"],
        "unit_price": kept["UnitPrice"],
        "customer_id": kept["CustomerID"].str.replace(r"\.0$", "", regex=True),
    })[list(SALES_COLUMNS)]
    return Conversion(products, sales, len(raw), int(cancelled.sum()), int((~cancelled & ~sellable).sum()))


def write_canonical_csvs(source: str | Path, out_dir: str | Path, rows: int | None = None) -> Conversion:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = convert(read_export(source, rows))
    result.products.to_csv(out / "products.csv", index=False)
    result.sales.to_csv(out / "sales.csv", index=False)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m emulator.online_retail", description=__doc__.splitlines()[0])
    p.add_argument("source", help="online_retail.csv(.gz)")
    p.add_argument("out_dir", help="folder for products.csv and sales.csv")
    p.add_argument("--rows", type=int, default=None, help="convert only the first N lines")
    args = p.parse_args(argv)
    r = write_canonical_csvs(args.source, args.out_dir, args.rows)
    print(f"{r.lines_read} lines read: {len(r.sales)} sale lines, {len(r.products)} products; "
          f"left out {r.cancellations} cancellation lines and {r.unsellable} with quantity < 1 or a negative price")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
