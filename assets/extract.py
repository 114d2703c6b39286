"""Extraction assets: the core's products, inventory, sales and a daily stock snapshot → raw.*."""


import tempfile
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import dagster as dg
from pydantic import Field

from pipelines.partitions import daily_partitions, partition_dates
from resources import WAREHOUSE_POOL, CoreApiResource, FoldersResource, WarehouseResource
from salesflow import extract
from salesflow.errors import CoreAuthError, CoreDataError

RAW_PRODUCTS = dg.AssetKey(["raw", "products"])
RAW_INVENTORY = dg.AssetKey(["raw", "inventory"])
RAW_SALES = dg.AssetKey(["raw", "sales"])
RAW_SALE_ITEMS = dg.AssetKey(["raw", "sale_items"])
RAW_STOCK_SNAPSHOTS = dg.AssetKey(["raw", "stock_snapshots"])

# A step whose calls to the core kept failing (after the client's own retries) is retried;
# bad data and refused credentials are not: a retry would fail the same way.
CORE_RETRY = dg.RetryPolicy(max_retries=2, delay=20, backoff=dg.Backoff.EXPONENTIAL,
                            jitter=dg.Jitter.PLUS_MINUS)


@contextmanager
def no_retry_for_bad_data():
    try:
        yield
    except (CoreDataError, CoreAuthError) as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None


def _preview(con, sql: str, params=None, limit: int = 5) -> dg.MetadataValue:
    frame = con.execute(f"{sql} LIMIT {int(limit)}", params or []).df()
    return dg.MetadataValue.md(frame.to_markdown(index=False) if len(frame) else "_no rows_")


def client_metadata(client) -> dict:
    return {
        "core_requests": client.stats.requests,
        "core_retries": client.stats.retries,
        "core_logins": client.stats.logins,
        "bytes_received": client.stats.bytes_received,
    }


@dg.asset(
    key=RAW_PRODUCTS,
    group_name="extract",
    kinds={"duckdb"},
    pool=WAREHOUSE_POOL,
    retry_policy=CORE_RETRY,
    description="Full snapshot of the core's product catalogue (stock figures are the real ones).",
)
def raw_products(
    context: dg.AssetExecutionContext, core: CoreApiResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    with no_retry_for_bad_data(), core.get_client(context.log) as client:
        frame = extract.products_frame(client.get_bytes("/products"))
        meta = client_metadata(client)
    with warehouse.get_connection() as con:
        rows = extract.replace_table(con, "raw.products", frame)
        preview = _preview(con, "SELECT sku, name, price, stock_quantity FROM raw.products ORDER BY sku")
    return dg.MaterializeResult(metadata={"dagster/row_count": rows, "preview": preview, **meta})


@dg.asset(
    key=RAW_INVENTORY,
    group_name="extract",
    kinds={"duckdb"},
    pool=WAREHOUSE_POOL,
    retry_policy=CORE_RETRY,
    description="Full snapshot of the core's inventory items: unit cost and category by sku. "
    "Its quantity is unreliable (the core adds product stock into it) and is kept as is.",
)
def raw_inventory(
    context: dg.AssetExecutionContext, core: CoreApiResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    with no_retry_for_bad_data(), core.get_client(context.log) as client:
        frame = extract.inventory_frame(client.get_bytes("/inventory"))
        meta = client_metadata(client)
    with warehouse.get_connection() as con:
        rows = extract.replace_table(con, "raw.inventory", frame)
        preview = _preview(con, "SELECT sku, category, cost, price FROM raw.inventory ORDER BY sku")
    return dg.MaterializeResult(metadata={"dagster/row_count": rows, "preview": preview, **meta})


class SalesExtractConfig(dg.Config):
    overlap_days: int = Field(
        default=1, description="Extra days fetched before the range, for clock skew at day ends"
    )
    full_after_days: int = Field(
        default=120,
        description="Read the full listing once when the range starts further back than this",
    )


SALES_CHECKS = [
    dg.AssetCheckSpec("reconciles_with_core", asset=RAW_SALES, blocking=True,
                      description="Per day, orders, units and revenue equal the core's listing"),
    dg.AssetCheckSpec("unique_sale_ids", asset=RAW_SALES, blocking=True),
    dg.AssetCheckSpec("items_add_up_to_total", asset=RAW_SALES, blocking=True,
                      description="Every sale's line subtotals add up to its total, to the cent"),
    dg.AssetCheckSpec("line_subtotals_match", asset=RAW_SALE_ITEMS, blocking=True,
                      description="Every line's subtotal is its quantity x unit price, to the cent"),
    dg.AssetCheckSpec("no_negative_money", asset=RAW_SALE_ITEMS, blocking=True),
    dg.AssetCheckSpec("sales_keep_their_day", asset=RAW_SALES,
                      description="No sale the warehouse holds changed its day in the core or left "
                      "its listing (warning: each is named with its old and new day)"),
    dg.AssetCheckSpec("sold_skus_known", asset=RAW_SALE_ITEMS,
                      description="Every sold sku is in the current catalogue (warning only)"),
]


@dg.multi_asset(
    specs=[
        dg.AssetSpec(RAW_SALES, group_name="extract", kinds={"duckdb"}, partitions_def=daily_partitions,
                     description="Sales by sale date (shop-local), merged by sale id.",
                     deps=[RAW_PRODUCTS]),
        dg.AssetSpec(RAW_SALE_ITEMS, group_name="extract", kinds={"duckdb"},
                     partitions_def=daily_partitions,
                     description="Sale lines with the sku, name and price at the time of sale."),
    ],
    check_specs=SALES_CHECKS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=WAREHOUSE_POOL,
    retry_policy=CORE_RETRY,
)
def raw_sales(
    context: dg.AssetExecutionContext,
    config: SalesExtractConfig,
    core: CoreApiResource,
    warehouse: WarehouseResource,
    folders: FoldersResource,
):
    start, end = partition_dates(context)
    with no_retry_for_bad_data(), \
            tempfile.TemporaryDirectory(prefix="sales-", dir=folders.spool) as tmp, \
            core.get_client(context.log) as client, warehouse.get_connection() as con:
        result = extract.extract_sales(
            client, con, start, end, workdir=Path(tmp), overlap_days=config.overlap_days,
            full_after_days=config.full_after_days, log=context.log,
        )
        meta = client_metadata(client)
        preview = _preview(
            con,
            "SELECT sale_date, count(*) AS orders, sum(total_amount) AS revenue FROM raw.sales "
            "WHERE sale_date BETWEEN ? AND ? GROUP BY 1 ORDER BY 1 DESC",
            [start, end],
        )
    plan, staged, written = result.plan, result.staged, result.written
    if written.outside_range and plan.mode == "full" and staged.first_date and staged.first_date < start:
        context.log.warning(
            f"{written.outside_range} sales of the listing lie outside {start}..{end}; sales before "
            f"the first partition are not loaded (set SALESFLOW_PARTITIONS_START earlier to keep them)"
        )
    common = {
        "range": f"{start}..{end}",
        "source": plan.path + (f"?days={plan.days}" if plan.days else ""),
        "core_today": str(result.core_today),
        "download_seconds": round(result.download_seconds, 3),
        **meta,
    }
    yield dg.MaterializeResult(
        asset_key=RAW_SALES,
        metadata={"dagster/row_count": written.sales, "replaced_sales": written.deleted_sales,
                  "fetched_sales": staged.sales, "preview": preview, **common},
    )
    yield dg.MaterializeResult(asset_key=RAW_SALE_ITEMS,
                               metadata={"dagster/row_count": written.lines, **common})
    differences, checks = result.differences, result.checks
    moves = checks["sales_keep_their_day"]
    for line in moves["examples"][:10]:
        context.log.warning(line)
    yield dg.AssetCheckResult(
        check_name="reconciles_with_core", asset_key=RAW_SALES, passed=not differences,
        metadata={"days_checked": (end - start).days + 1, "differences": len(differences),
                  "first_differences": dg.MetadataValue.json(differences[:10]),
                  "held_sales": dg.MetadataValue.json(written.held_ids[:50]),
                  "moved_or_gone_sales": sum(moves["counts"].values())},
    )
    targets = {"unique_sale_ids": RAW_SALES, "items_add_up_to_total": RAW_SALES,
               "line_subtotals_match": RAW_SALE_ITEMS, "no_negative_money": RAW_SALE_ITEMS,
               "sold_skus_known": RAW_SALE_ITEMS, "sales_keep_their_day": RAW_SALES}
    warnings = ("sold_skus_known", "sales_keep_their_day")
    for name, check in checks.items():
        extra = {k: dg.MetadataValue.json(v) for k, v in check.items() if k not in ("passed", "examples")}
        yield dg.AssetCheckResult(
            check_name=name, asset_key=targets[name], passed=check["passed"],
            severity=dg.AssetCheckSeverity.WARN if name in warnings else dg.AssetCheckSeverity.ERROR,
            metadata={"examples": dg.MetadataValue.json(check["examples"]), **extra},
        )


@dg.asset(
    key=RAW_STOCK_SNAPSHOTS,
    group_name="extract",
    kinds={"duckdb"},
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[RAW_PRODUCTS],
    pool=WAREHOUSE_POOL,
    retry_policy=CORE_RETRY,
    description="Each day's closing stock per sku. The core keeps only the current figure, so a "
    "snapshot is recorded for the latest complete day (or today) when the daily run sees it; "
    "older partitions have no stock history to record.",
)
def raw_stock_snapshots(
    context: dg.AssetExecutionContext, core: CoreApiResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    start, end = partition_dates(context)
    with no_retry_for_bad_data(), core.get_client(context.log) as client:
        core_today = client.server_today()
    recordable = [d for d in (core_today - timedelta(days=1), core_today) if start <= d <= end]
    written = {}
    with warehouse.get_connection() as con:
        fresh = con.execute("SELECT count(*), max(extracted_at) FROM raw.products").fetchone()
        if not fresh[0]:
            raise dg.Failure("raw/products is empty: materialize it before the stock snapshot")
        for day in recordable:
            written[str(day)] = extract.write_stock_snapshot(con, day)
    if not recordable:
        context.log.info(
            f"no snapshot for {start}..{end}: the core only knows today's stock ({core_today})"
        )
    return dg.MaterializeResult(
        metadata={"dagster/row_count": sum(written.values()), "snapshots": dg.MetadataValue.json(written),
                  "core_today": str(core_today)}
    )


extract_assets = [raw_products, raw_inventory, raw_sales, raw_stock_snapshots]
