"""The KPIs of ``marts.kpis`` written the way a data analyst would: pandas groupbys over the raw
tables loaded as DataFrames. The benchmark baseline for the SQL marts, and a cross-check in
the tests (same figures, computed independently).

Amounts are summed as floats and rounded to cents at the end; ratios are then taken on those
cent amounts with Decimal and rounded half-up, as the marts do.
"""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal

import pandas as pd

CENT = Decimal("0.01")


def _money(x: float) -> Decimal:
    return Decimal(f"{x:.2f}")


def _ratio(num: Decimal, den, times: int = 1) -> Decimal | None:
    if den is None or den == 0:
        return None
    return (Decimal(num) * times / Decimal(den)).quantize(CENT, rounding=ROUND_HALF_UP)


def _windows(as_of: pd.Timestamp, first_sale: pd.Timestamp) -> dict:
    month_start = as_of.replace(day=1)
    year_start = as_of.replace(month=1, day=1)
    return {
        "7d": (as_of - pd.Timedelta(days=6), as_of - pd.Timedelta(days=13), as_of - pd.Timedelta(days=7)),
        "28d": (as_of - pd.Timedelta(days=27), as_of - pd.Timedelta(days=55), as_of - pd.Timedelta(days=28)),
        "mtd": (month_start, month_start - pd.DateOffset(months=1), as_of - pd.DateOffset(months=1)),
        "ytd": (year_start, year_start - pd.DateOffset(years=1), as_of - pd.DateOffset(years=1)),
        "all": (first_sale, None, None),
    }


def pandas_kpis(sales: pd.DataFrame, items: pd.DataFrame, inventory: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """One row per window (7d, 28d, mtd, ytd, all) with the columns of ``marts.kpis``."""
    as_of = pd.Timestamp(as_of)
    sales = sales[["sale_id", "sale_date", "customer_id"]].copy()
    sales["sale_date"] = pd.to_datetime(sales["sale_date"])
    customer = sales["customer_id"].astype("string").str.strip()
    sales["customer_id"] = customer.where(customer != "")
    sales = sales[sales["sale_date"] <= as_of]

    inv = inventory[["sku", "category", "cost"]].copy()
    inv["cost"] = inv["cost"].astype("float64")
    inv["category"] = inv["category"].fillna("Uncategorized")
    known = inv[inv["cost"].notna() & ((inv["cost"] > 0) | (inv["category"] != "Uncategorized"))]
    known = known.drop_duplicates("sku", keep="last")[["sku", "cost"]]

    lines = items[["sale_id", "sku", "quantity", "subtotal"]].merge(sales, on="sale_id")
    lines["subtotal"] = lines["subtotal"].astype("float64")
    lines = lines.merge(known, on="sku", how="left")
    lines["line_cost"] = lines["quantity"] * lines["cost"]
    lines["known_revenue"] = lines["subtotal"].where(lines["cost"].notna(), 0.0)

    daily = lines.groupby("sale_date").agg(
        revenue=("subtotal", "sum"), units=("quantity", "sum"), orders=("sale_id", "nunique"),
        cost=("line_cost", "sum"), revenue_with_cost=("known_revenue", "sum"),
    ).sort_index()
    daily["revenue"] = daily["revenue"].round(2)

    first_sale = sales["sale_date"].min() if len(sales) else as_of
    rows = []
    for name, (start, prev_start, prev_end) in _windows(as_of, first_sale).items():
        d = daily.loc[start:as_of]
        revenue = _money(d["revenue"].sum())
        orders = int(d["orders"].sum())
        units = int(d["units"].sum())
        cost = _money(d["cost"].sum())
        revenue_with_cost = _money(d["revenue_with_cost"].sum())
        gross_profit = revenue_with_cost - cost
        growth = None
        if prev_start is not None:
            prev = _money(daily.loc[prev_start:prev_end, "revenue"].sum())
            growth = _ratio(revenue - prev, prev, 100)
        peak_day = peak_revenue = None
        if orders:
            peak_day = d["revenue"].idxmax()
            peak_revenue = _money(d.loc[peak_day, "revenue"])
            peak_day = peak_day.date()

        in_window = sales[(sales["sale_date"] >= start) & (sales["sale_date"] <= as_of)]
        known_customers = in_window.dropna(subset=["customer_id"])
        per_customer = known_customers.groupby("customer_id")["sale_id"].nunique()
        customers = repeat_rate = note = None
        if len(in_window) == 0:
            note = "no sales in this window"
        elif len(known_customers) == 0:
            note = "no customer ids in this window's sales"
        else:
            customers = len(per_customer)
            repeat_rate = _ratio(Decimal(int((per_customer >= 2).sum())), customers, 100)
            if len(known_customers) < len(in_window):
                note = (f"customer figures from {len(known_customers)} of {len(in_window)} orders "
                        "(the others carry no customer id)")

        rows.append({
            "as_of": as_of.date(), "window": name, "revenue": revenue, "orders": orders, "units": units,
            "avg_order_value": _ratio(revenue, orders), "gross_margin_pct": _ratio(gross_profit, revenue_with_cost, 100),
            "revenue_growth_pct": growth, "repeat_customer_rate": repeat_rate,
            "peak_day": peak_day, "peak_day_revenue": peak_revenue,
            "window_start": start.date(), "window_end": as_of.date(), "gross_profit": gross_profit,
            "cost_coverage_pct": _ratio(revenue_with_cost, revenue, 100), "customers": customers, "note": note,
        })
    return pd.DataFrame(rows)


def pandas_marts(sales: pd.DataFrame, items: pd.DataFrame, inventory: pd.DataFrame,
                 products: pd.DataFrame, snapshots: pd.DataFrame, as_of: date, *, top_n: int = 10,
                 lead: int = 7, safety: int = 7, overstock: int = 120) -> dict[str, pd.DataFrame]:
    """Everything a full marts rebuild produces for one as-of day, the pandas way: the KPIs,
    per-product daily sales (distinct orders per sku and day), top products per window and the
    stock status."""
    kpis = pandas_kpis(sales, items, inventory, as_of)
    day = pd.Timestamp(as_of)
    dated = sales[["sale_id", "sale_date"]].assign(sale_date=pd.to_datetime(sales["sale_date"]))
    dated = dated[dated["sale_date"] <= day]
    lines = items[["sale_id", "sku", "quantity", "subtotal"]].merge(dated, on="sale_id")
    lines["subtotal"] = lines["subtotal"].astype("float64")
    product_daily = lines.groupby(["sale_date", "sku"], as_index=False).agg(
        orders=("sale_id", "nunique"), units=("quantity", "sum"), revenue=("subtotal", "sum"))

    names = products.drop_duplicates("sku", keep="last").set_index("sku")["name"]
    top = []
    for _, row in kpis.iterrows():
        start = pd.Timestamp(row["window_start"])
        sold = product_daily[(product_daily["sale_date"] >= start) & (product_daily["sale_date"] <= day)]
        per_sku = sold.groupby("sku", as_index=False)[["revenue", "units"]].sum()
        total = per_sku["revenue"].sum()
        best = per_sku.sort_values(["revenue", "sku"], ascending=[False, True]).head(top_n).copy()
        best["window"] = row["window"]
        best["rank"] = range(1, len(best) + 1)
        best["product_name"] = best["sku"].map(names)
        best["revenue_share"] = (best["revenue"] * 100 / total).round(2) if total else None
        if len(best):
            top.append(best)
    top_products = pd.concat(top, ignore_index=True) if top else pd.DataFrame(columns=["window", "sku"])

    catalogue = products.drop_duplicates("sku", keep="last").set_index("sku")
    snap = snapshots[pd.to_datetime(snapshots["snapshot_date"]) == day].drop_duplicates("sku").set_index("sku")
    stock = catalogue["stock_quantity"].where(~catalogue.index.isin(snap.index), snap["stock_quantity"])
    threshold = catalogue["low_stock_threshold"].where(~catalogue.index.isin(snap.index),
                                                       snap["low_stock_threshold"])
    recent = product_daily[(product_daily["sale_date"] > day - pd.Timedelta(days=28))
                           & (product_daily["sale_date"] <= day)]
    u28 = recent.groupby("sku")["units"].sum().reindex(catalogue.index, fill_value=0)
    last_sale = product_daily[product_daily["sale_date"] <= day].groupby("sku")["sale_date"].max()
    last_sale = last_sale.reindex(catalogue.index)
    avg = u28 / 28
    cover = (stock / avg).where(avg > 0)
    dead = last_sale.isna() | (last_sale <= day - pd.Timedelta(days=90))
    status = pd.Series("OK", index=catalogue.index)
    status[(avg > 0) & (cover > overstock)] = "OVERSTOCK"
    status[dead] = "DEAD"
    status[stock < threshold] = "LOW"
    status[stock <= 0] = "OUT_OF_STOCK"
    short = (avg > 0) & (cover < lead)
    ratio = stock / threshold
    severity = pd.Series("none", index=catalogue.index)
    severity[short] = "medium"
    low = status == "LOW"
    severity[low] = "low"
    severity[low & (ratio <= 0.5)] = "medium"
    severity[low & ((ratio <= 0.25) | short)] = "high"
    severity[status == "OUT_OF_STOCK"] = "critical"
    need = (status.isin(["OUT_OF_STOCK", "LOW"]) | short)
    reorder = ((avg * (lead + safety)).apply(lambda x: -(-x // 1)) + threshold - stock).clip(lower=0)
    stock_status = pd.DataFrame({
        "sku": catalogue.index, "product_name": catalogue["name"], "stock_quantity": stock,
        "low_stock_threshold": threshold, "avg_daily_units_28d": avg.round(3), "days_of_cover": cover.round(1),
        "status": status, "severity": severity, "reorder_qty": reorder.where(need, 0).astype(int),
    }).reset_index(drop=True)
    return {"kpis": kpis, "product_daily_sales": product_daily, "top_products": top_products,
            "stock_status": stock_status}
