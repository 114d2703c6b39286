"""Real shop exports turned into the marts' daily frames, for forecasting benchmarks and tests.

Every reader returns sale *lines* with the columns ``sale_date`` (``datetime64[ns]``, midnight),
``sale_id``, ``sku``, ``quantity`` (int) and ``revenue`` (float); ``daily_frames`` aggregates
lines into the two frames ``marts.daily_sales`` and ``marts.product_daily_sales`` hold:

``daily``          ``sale_date, orders, units, revenue`` -- every calendar day of the span, zero days
                   included;
``product_daily``  ``sale_date, sku, orders, units, revenue`` -- only the days a sku sold.

Readers:

* ``read_superstore``: the "Sample - Superstore" orders table (UTF-8 with a byte-order mark,
  ``Order Date`` as M/D/YYYY). A line is an order line: ``Order ID`` is the sale, ``Product ID``
  the sku, ``Sales`` (net of discount) the revenue. ``sku_column="Sub-Category"`` groups the
  1,862 sparse products into 17 sub-categories instead.
* ``read_cdnow``: the CDNOW purchase log (``customer_id, date, number_of_cds, dollar_value``).
  A row is a sale of ``number_of_cds`` units worth ``dollar_value``; it has no product, so
  every line carries the sku ``CD``. Exact duplicate rows are kept (they are separate purchases
  as far as the file tells); zero-dollar rows count as orders without revenue.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

LINE_COLUMNS = ["sale_date", "sale_id", "sku", "quantity", "revenue"]
DAILY_COLUMNS = ["sale_date", "orders", "units", "revenue"]
PRODUCT_DAILY_COLUMNS = ["sale_date", "sku", "orders", "units", "revenue"]


def read_superstore(path: str | Path, *, sku_column: str = "Product ID") -> pd.DataFrame:
    """Sale lines of the Superstore orders file (see the module docstring)."""
    raw = pd.read_csv(
        path, encoding="utf-8-sig",
        usecols=["Order ID", "Order Date", sku_column, "Sales", "Quantity"],
        dtype={"Order ID": str, sku_column: str},
    )
    return pd.DataFrame(
        {
            "sale_date": pd.to_datetime(raw["Order Date"], format="%m/%d/%Y"),
            "sale_id": raw["Order ID"].astype(str),
            "sku": raw[sku_column].astype(str),
            "quantity": raw["Quantity"].astype(np.int64),
            "revenue": raw["Sales"].astype(float),
        },
        columns=LINE_COLUMNS,
    )


def read_cdnow(path: str | Path) -> pd.DataFrame:
    """Sale lines of the CDNOW purchase log (see the module docstring)."""
    raw = pd.read_csv(path, dtype={"customer_id": str})
    return pd.DataFrame(
        {
            "sale_date": pd.to_datetime(raw["date"], format="%Y-%m-%d"),
            "sale_id": np.arange(len(raw)).astype(str),
            "sku": "CD",
            "quantity": raw["number_of_cds"].astype(np.int64),
            "revenue": raw["dollar_value"].astype(float),
        },
        columns=LINE_COLUMNS,
    )


def daily_frames(
    lines: pd.DataFrame, start: object | None = None, end: object | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(daily, product_daily)`` as the marts hold them, for ``start`` .. ``end`` (defaults:
    the first and last sale day)."""
    day = pd.to_datetime(lines["sale_date"]).dt.normalize()
    lo = pd.Timestamp(start) if start is not None else day.min()
    hi = pd.Timestamp(end) if end is not None else day.max()
    keep = (day >= lo) & (day <= hi)
    frame = lines.loc[keep, ["sale_id", "sku", "quantity", "revenue"]].assign(sale_date=day[keep])
    product_daily = (
        frame.groupby(["sale_date", "sku"], sort=True)
        .agg(orders=("sale_id", "nunique"), units=("quantity", "sum"), revenue=("revenue", "sum"))
        .reset_index()
    )
    product_daily = product_daily[PRODUCT_DAILY_COLUMNS]
    per_day = frame.groupby("sale_date").agg(
        orders=("sale_id", "nunique"), units=("quantity", "sum"), revenue=("revenue", "sum")
    )
    days = pd.date_range(lo, hi, freq="D", name="sale_date")
    daily = per_day.reindex(days).fillna(0).reset_index()
    daily["orders"] = daily["orders"].astype(np.int64)
    daily["units"] = daily["units"].astype(np.int64)
    daily["revenue"] = daily["revenue"].astype(float).round(2)
    product_daily["revenue"] = product_daily["revenue"].round(2)
    return daily[DAILY_COLUMNS], product_daily.reset_index(drop=True)
