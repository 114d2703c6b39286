"""Mart assets: daily sales, KPIs, top products, stock status, customers, expenses, exports."""

from datetime import date, timedelta

import dagster as dg
from pydantic import Field

from assets.extract import RAW_INVENTORY, RAW_PRODUCTS, RAW_SALE_ITEMS, RAW_SALES, RAW_STOCK_SNAPSHOTS
from assets.imported import RAW_EXPENSES
from pipelines.automation import AFTER_INPUTS_SETTLE, FOLLOW_ANY_DAY, FOLLOW_MARTS
from pipelines.partitions import daily_partitions, partition_dates
from resources import WAREHOUSE_POOL, FoldersResource, WarehouseResource
from salesflow import customers, expenses, exports, mart_checks, marts

DAILY_SALES = dg.AssetKey(["marts", "daily_sales"])
PRODUCT_DAILY_SALES = dg.AssetKey(["marts", "product_daily_sales"])
KPIS = dg.AssetKey(["marts", "kpis"])
TOP_PRODUCTS = dg.AssetKey(["marts", "top_products"])
STOCK_STATUS = dg.AssetKey(["marts", "stock_status"])
STOCK_TURNOVER = dg.AssetKey(["marts", "stock_turnover"])
CUSTOMER_DAILY = dg.AssetKey(["marts", "customer_daily"])
CUSTOMER_RFM = dg.AssetKey(["marts", "customer_rfm"])
COHORT_RETENTION = dg.AssetKey(["marts", "cohort_retention"])
EXPENSES_MONTHLY = dg.AssetKey(["marts", "expenses_monthly"])
PROFIT_MONTHLY = dg.AssetKey(["marts", "profit_monthly"])
MART_EXPORTS = dg.AssetKey(["exports", "marts"])


def _md(con, sql: str, params=None, limit: int = 10) -> dg.MetadataValue:
    frame = con.execute(f"SELECT * FROM ({sql}) LIMIT {int(limit)}", params or []).df()
    return dg.MetadataValue.md(frame.to_markdown(index=False) if len(frame) else "_no rows_")


def _days(start: date, end: date):
    day = start
    while day <= end:
        yield day
        day += timedelta(days=1)


@dg.multi_asset(
    specs=[
        dg.AssetSpec(DAILY_SALES, group_name="marts", kinds={"duckdb"}, automation_condition=FOLLOW_ANY_DAY, partitions_def=daily_partitions,
                     deps=[RAW_SALES, RAW_SALE_ITEMS, RAW_INVENTORY],
                     description="Revenue trend: every calendar day (zero days included), with "
                     "cost and gross profit over lines whose unit cost is known."),
        dg.AssetSpec(PRODUCT_DAILY_SALES, group_name="marts", kinds={"duckdb"}, automation_condition=FOLLOW_ANY_DAY,
                     partitions_def=daily_partitions, deps=[RAW_SALES, RAW_SALE_ITEMS],
                     description="Orders, units and revenue per sku and day with sales."),
        dg.AssetSpec(CUSTOMER_DAILY, group_name="marts", kinds={"duckdb"}, automation_condition=FOLLOW_ANY_DAY, partitions_def=daily_partitions,
                     deps=[RAW_SALES], description="New and returning customers per day."),
    ],
    check_specs=[
        dg.AssetCheckSpec("reconciles_with_raw", asset=DAILY_SALES, blocking=True,
                          description="Orders, units and revenue per day equal raw.sales/raw.sale_items"),
        dg.AssetCheckSpec("products_add_up_to_days", asset=PRODUCT_DAILY_SALES, blocking=True,
                          description="Per-product daily sums equal the daily totals"),
    ],
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=WAREHOUSE_POOL,
)
def daily_marts(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    start, end = partition_dates(context)
    with warehouse.get_connection() as con:
        built = marts.build_daily(con, start, end)
        n_customer_days = customers.build_customer_daily(con, start, end)
        mismatch = mart_checks.check_daily_against_raw(con, start, end)
        product_gap = mart_checks.check_products_add_up(con, start, end)
        preview = _md(con, "SELECT * FROM marts.daily_sales WHERE sale_date BETWEEN ? AND ? "
                           "ORDER BY sale_date DESC", [start, end])
    meta = {"range": f"{start}..{end}"}
    yield dg.MaterializeResult(asset_key=DAILY_SALES, metadata={
        **meta, "dagster/row_count": built.get("daily_sales", 0), "preview": preview})
    yield dg.MaterializeResult(asset_key=PRODUCT_DAILY_SALES, metadata={
        **meta, "dagster/row_count": built.get("product_daily_sales", 0)})
    yield dg.MaterializeResult(asset_key=CUSTOMER_DAILY, metadata={**meta, "dagster/row_count": n_customer_days})
    yield dg.AssetCheckResult(check_name="reconciles_with_raw", asset_key=DAILY_SALES, passed=not mismatch,
                              metadata={"differences": dg.MetadataValue.json(mismatch[:10])})
    yield dg.AssetCheckResult(check_name="products_add_up_to_days", asset_key=PRODUCT_DAILY_SALES,
                              passed=not product_gap,
                              metadata={"differences": dg.MetadataValue.json(product_gap[:10])})


class StockConfig(dg.Config):
    lead_time_days: int = Field(default=marts.DEFAULT_LEAD_TIME_DAYS, description="Days from order to delivery")
    safety_days: int = Field(default=7, description="Extra days of cover kept as safety stock")
    overstock_days: int = Field(default=120, description="Cover above this many days is OVERSTOCK")
    top_n: int = Field(default=10, description="Products listed per window in top_products")


@dg.multi_asset(
    specs=[
        dg.AssetSpec(KPIS, group_name="marts", kinds={"duckdb"}, automation_condition=FOLLOW_ANY_DAY, partitions_def=daily_partitions,
                     deps=[DAILY_SALES, RAW_SALES],
                     description="KPIs for the windows 7d, 28d, mtd, ytd and all ending on the as-of day."),
        dg.AssetSpec(TOP_PRODUCTS, group_name="marts", kinds={"duckdb"}, automation_condition=FOLLOW_ANY_DAY, partitions_def=daily_partitions,
                     deps=[PRODUCT_DAILY_SALES, RAW_PRODUCTS]),
        dg.AssetSpec(STOCK_STATUS, group_name="marts", kinds={"duckdb"}, automation_condition=FOLLOW_ANY_DAY, partitions_def=daily_partitions,
                     deps=[RAW_PRODUCTS, RAW_STOCK_SNAPSHOTS, PRODUCT_DAILY_SALES],
                     description="Stock, cover, status, severity and reorder quantity per product."),
        dg.AssetSpec(STOCK_TURNOVER, group_name="marts", kinds={"duckdb"}, automation_condition=FOLLOW_ANY_DAY, partitions_def=daily_partitions,
                     deps=[RAW_STOCK_SNAPSHOTS, PRODUCT_DAILY_SALES]),
    ],
    check_specs=[
        dg.AssetCheckSpec("five_windows_per_day", asset=KPIS, blocking=True),
        dg.AssetCheckSpec("one_row_per_product", asset=STOCK_STATUS, blocking=True),
        dg.AssetCheckSpec("products_fit_the_marts", asset=STOCK_STATUS, blocking=False,
                          description="Products whose data breaks an assumption of the marts "
                          "(price 0, sold but not in the catalogue, skus differing only in case, "
                          "listed twice, figures beyond a column), named with the reason"),
    ],
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=WAREHOUSE_POOL,
)
def as_of_marts(context: dg.AssetExecutionContext, config: StockConfig, warehouse: WarehouseResource):
    start, end = partition_dates(context)
    totals: dict[str, int] = {}
    with warehouse.get_connection() as con:
        snapshot_days = {d for (d,) in con.execute(
            "SELECT DISTINCT snapshot_date FROM raw.stock_snapshots WHERE snapshot_date BETWEEN ? AND ?",
            [start, end]).fetchall()}
        for day in _days(start, end):
            for table, rows in marts.build_as_of(
                con, day, top_n=config.top_n, lead_time_days=config.lead_time_days,
                safety_days=config.safety_days, overstock_days=config.overstock_days,
                stock=day in snapshot_days,
            ).items():
                if isinstance(rows, int):
                    totals[table] = totals.get(table, 0) + rows
        bad_windows = con.execute(
            """SELECT as_of, count(*) FROM marts.kpis WHERE as_of BETWEEN ? AND ?
               GROUP BY 1 HAVING count(*) <> 5 ORDER BY 1 LIMIT 10""", [start, end]).fetchall()
        missing_days = con.execute(
            "SELECT count(*) FROM range(?::TIMESTAMP, ?::TIMESTAMP + INTERVAL 1 DAY, INTERVAL 1 DAY) d(day) "
            "WHERE d.day::DATE NOT IN (SELECT as_of FROM marts.kpis)", [start, end]).fetchone()[0]
        stock_day = max(snapshot_days, default=None)
        dup_products = con.execute(
            """SELECT sku, count(*) FROM marts.stock_status WHERE as_of = ? GROUP BY 1
               HAVING count(*) > 1 LIMIT 10""", [stock_day]).fetchall()
        missing_products = 0 if stock_day is None else con.execute(
            """SELECT count(*) FROM raw.products WHERE sku NOT IN
               (SELECT sku FROM marts.stock_status WHERE as_of = ?)""", [stock_day]).fetchone()[0]
        kpi_md = _md(con, "SELECT \"window\", revenue, orders, avg_order_value, gross_margin_pct, "
                          "revenue_growth_pct, repeat_customer_rate, peak_day FROM marts.kpis "
                          "WHERE as_of = ? ORDER BY window_start DESC", [end])
        alerts_md = _md(con, "SELECT sku, product_name, stock_quantity, days_of_cover, status, severity, "
                             "reorder_qty FROM marts.stock_status WHERE as_of = ? AND status <> 'OK' "
                             "ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1 "
                             "WHEN 'medium' THEN 2 ELSE 3 END, sku", [stock_day])
        statuses = dict(con.execute("SELECT status, count(*) FROM marts.stock_status WHERE as_of = ? "
                                    "GROUP BY 1", [stock_day]).fetchall())
        misfits = mart_checks.check_product_assumptions(con, end, stock_day)
    meta = {"range": f"{start}..{end}", "as_of": str(end)}
    yield dg.MaterializeResult(asset_key=KPIS, metadata={**meta, "dagster/row_count": totals.get("kpis", 0),
                                                         "kpis": kpi_md})
    yield dg.MaterializeResult(asset_key=TOP_PRODUCTS, metadata={
        **meta, "dagster/row_count": totals.get("top_products", 0)})
    stock_meta = {"stock_as_of": str(stock_day) if stock_day else "no stock snapshot in the range: "
                  "the core keeps only today's stock, so past days have no stock figures"}
    yield dg.MaterializeResult(asset_key=STOCK_STATUS, metadata={
        **meta, **stock_meta, "dagster/row_count": totals.get("stock_status", 0), "alerts": alerts_md,
        "statuses": dg.MetadataValue.json(statuses)})
    yield dg.MaterializeResult(asset_key=STOCK_TURNOVER, metadata={
        **meta, **stock_meta, "dagster/row_count": totals.get("stock_turnover", 0)})
    yield dg.AssetCheckResult(check_name="five_windows_per_day", asset_key=KPIS,
                              passed=not bad_windows and not missing_days,
                              metadata={"bad_days": dg.MetadataValue.json([str(d) for d, _ in bad_windows]),
                                        "missing_days": missing_days})
    yield dg.AssetCheckResult(check_name="one_row_per_product", asset_key=STOCK_STATUS,
                              passed=not dup_products and not missing_products,
                              metadata={"duplicated": dg.MetadataValue.json([s for s, _ in dup_products]),
                                        "missing": missing_products})
    yield dg.AssetCheckResult(check_name="products_fit_the_marts", asset_key=STOCK_STATUS,
                              passed=not misfits, severity=dg.AssetCheckSeverity.WARN,
                              description=_misfits_text(misfits),
                              metadata={"products": dg.MetadataValue.json(misfits)})


def _misfits_text(misfits: list[dict]) -> str:
    if not misfits:
        return "every product fits the marts"
    skus = sorted({m["sku"] for m in misfits})
    more = f" and {len(skus) - 5} more" if len(skus) > 5 else ""
    return f"{len(skus)} product(s) break an assumption of the marts: {', '.join(map(repr, skus[:5]))}{more}"


@dg.multi_asset(
    specs=[
        dg.AssetSpec(CUSTOMER_RFM, group_name="marts", kinds={"duckdb"}, automation_condition=FOLLOW_MARTS, deps=[RAW_SALES, CUSTOMER_DAILY],
                     description="RFM scores and segments as of the latest sale day."),
        dg.AssetSpec(COHORT_RETENTION, group_name="marts", kinds={"duckdb"}, automation_condition=FOLLOW_MARTS, deps=[RAW_SALES, CUSTOMER_DAILY],
                     description="Monthly cohort retention as of the latest sale day."),
        dg.AssetSpec(EXPENSES_MONTHLY, group_name="marts", kinds={"duckdb"}, automation_condition=FOLLOW_MARTS, deps=[DAILY_SALES, RAW_EXPENSES],
                     description="Expenses by category and month (expenses arrive through imports)."),
        dg.AssetSpec(PROFIT_MONTHLY, group_name="marts", kinds={"duckdb"}, automation_condition=FOLLOW_MARTS, deps=[DAILY_SALES, RAW_EXPENSES],
                     description="Net profit per month: gross profit − expenses."),
    ],
    pool=WAREHOUSE_POOL,
)
def snapshot_marts(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    with warehouse.get_connection() as con:
        as_of = marts.latest_closed_sale_date(con)
        if as_of is None:
            raise dg.Failure("raw.sales is empty: extract sales first", allow_retries=False)
        cust = customers.build_customer_as_of(con, as_of)
        spend = expenses.build_expense_marts(con, as_of)
        segments = _md(con, "SELECT segment, count(*) AS customers, sum(monetary) AS revenue "
                            "FROM marts.customer_rfm WHERE as_of = ? GROUP BY 1 ORDER BY 3 DESC", [as_of])
        profit = _md(con, "SELECT * FROM marts.profit_monthly ORDER BY month DESC", limit=6)
    meta = {"as_of": str(as_of)}
    yield dg.MaterializeResult(asset_key=CUSTOMER_RFM, metadata={
        **meta, **{k: v for k, v in cust.items() if isinstance(v, (int, str))}, "segments": segments})
    yield dg.MaterializeResult(asset_key=COHORT_RETENTION, metadata=meta)
    yield dg.MaterializeResult(asset_key=EXPENSES_MONTHLY, metadata={
        **meta, **{k: v for k, v in spend.items() if isinstance(v, (int, str))}})
    yield dg.MaterializeResult(asset_key=PROFIT_MONTHLY, metadata={**meta, "latest_months": profit})


@dg.asset(
    key=MART_EXPORTS,
    group_name="exports",
    deps=[DAILY_SALES, PRODUCT_DAILY_SALES, KPIS, TOP_PRODUCTS, STOCK_STATUS, STOCK_TURNOVER,
          CUSTOMER_DAILY, CUSTOMER_RFM, COHORT_RETENTION, EXPENSES_MONTHLY, PROFIT_MONTHLY],
    kinds={"csv", "parquet"},
    pool=WAREHOUSE_POOL,
    automation_condition=AFTER_INPUTS_SETTLE,
    description="Every mart as CSV (header row, ISO dates) and Parquet under exports/marts/.",
)
def mart_exports(warehouse: WarehouseResource, folders: FoldersResource) -> dg.MaterializeResult:
    folder = folders.path("exports", "marts")
    with warehouse.get_connection() as con:
        paths = exports.export_marts(con, folder)
    return dg.MaterializeResult(metadata={
        "folder": dg.MetadataValue.path(str(folder.resolve())),
        "files": dg.MetadataValue.json(sorted(p.name for p in paths)),
    })


mart_assets = [daily_marts, as_of_marts, snapshot_marts, mart_exports]
