"""The reorder list (``marts.reorder_suggestions``): what to order per sku, from the forecast."""

from typing import Optional

import dagster as dg
from pydantic import Field

from assets.extract import RAW_INVENTORY
from assets.imported import RAW_LEAD_TIMES
from assets.marts import PRODUCT_DAILY_SALES, STOCK_STATUS, _md
from assets.reports import SALES_FORECAST
from pipelines.automation import FOLLOW_UPSTREAM
from pipelines.partitions import daily_partitions, partition_dates
from resources import WAREHOUSE_POOL, WarehouseResource
from salesflow import reorder
from salesflow.marts import DEFAULT_LEAD_TIME_DAYS

REORDER_SUGGESTIONS = dg.AssetKey(["marts", "reorder_suggestions"])


class ReorderConfig(dg.Config):
    lead_time_days: Optional[int] = Field(default=None, description=(
        "Default days from order to delivery for products without their own or their category's "
        f"lead time; unset: the stock status mart's default ({DEFAULT_LEAD_TIME_DAYS})"))


@dg.asset(
    key=REORDER_SUGGESTIONS, group_name="marts", kinds={"duckdb"}, partitions_def=daily_partitions,
    deps=[STOCK_STATUS, SALES_FORECAST, PRODUCT_DAILY_SALES, RAW_INVENTORY, RAW_LEAD_TIMES],
    pool=WAREHOUSE_POOL,
    automation_condition=FOLLOW_UPSTREAM, backfill_policy=dg.BackfillPolicy.single_run(),
    check_specs=[dg.AssetCheckSpec("rows_add_up", asset=REORDER_SUGGESTIONS, blocking=False,
                                   description="One row per sku, no negative figure, order qty = "
                                               "target - stock rounded up, order cost = qty x unit cost")],
    description="Per sku worth acting on: stock, forecast units over the lead time plus safety "
                "stock, suggested order quantity, its cost where the unit cost is known, and the "
                "projected stock-out date. Lead times per product (lead_times imports), per "
                f"category (${reorder.CATEGORY_ENV}) or the default.",
)
def reorder_suggestions(context: dg.AssetExecutionContext, config: ReorderConfig,
                        warehouse: WarehouseResource):
    start, end = partition_dates(context)
    default = DEFAULT_LEAD_TIME_DAYS if config.lead_time_days is None else config.lead_time_days
    try:
        by_category = reorder.category_lead_times_from_env()
    except ValueError as exc:
        raise dg.Failure(str(exc), allow_retries=False) from None
    with warehouse.get_connection() as con:
        reorder.ensure_reorder(con)
        days = [d for (d,) in con.execute(
            "SELECT DISTINCT as_of FROM marts.stock_status WHERE as_of BETWEEN ? AND ? ORDER BY 1",
            [start, end]).fetchall()]
        built = {day: reorder.build_reorder(con, day, default_lead_time_days=default,
                                            category_lead_times=by_category) for day in days}
        last = days[-1] if days else None
        preview = _md(con, "SELECT sku, product_name, category, stock_quantity, lead_time_days, basis, "
                           "target_units, suggested_qty, CAST(order_cost AS VARCHAR) AS order_cost, "
                           "CAST(stockout_date AS VARCHAR) AS stockout_date "
                           "FROM marts.reorder_suggestions WHERE as_of = ? "
                           "ORDER BY stockout_date NULLS LAST, order_cost DESC NULLS LAST, sku", [last])
        broken = [dict(p, as_of=str(day)) for day in days for p in reorder.check_rows(con, day)]
        totals = con.execute("SELECT count(*), coalesce(sum(suggested_qty), 0), sum(order_cost), "
                             "count(*) FILTER (WHERE order_cost IS NULL) "
                             "FROM marts.reorder_suggestions WHERE as_of = ?", [last]).fetchone()
    result = built.get(last)
    yield dg.MaterializeResult(metadata={
        "range": f"{start}..{end}",
        "as_of": str(last) if last else "no stock figures in the range: the core keeps only "
                                        "today's stock, so past days have no reorder list",
        "dagster/row_count": sum(r.rows for r in built.values()),
        "skus_considered": result.skus if result else 0,
        "units_to_order": int(totals[1]),
        "order_cost_known": str(totals[2] or 0),
        "rows_without_cost": int(totals[3]),
        "by_basis": dg.MetadataValue.json(result.by_basis if result else {}),
        "by_lead_time_source": dg.MetadataValue.json(result.by_lead_time_source if result else {}),
        "default_lead_time_days": default,
        "category_lead_times": dg.MetadataValue.json(by_category),
        "preview": preview,
    })
    yield dg.AssetCheckResult(check_name="rows_add_up", passed=not broken,
                              severity=dg.AssetCheckSeverity.WARN,
                              metadata={"rows": dg.MetadataValue.json(broken[:10])})


reorder_assets = [reorder_suggestions]
