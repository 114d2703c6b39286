"""Today, as it happens: today's sales so far and the marts that show them, marked provisional.

Today is not a daily partition: these assets are unpartitioned, in their own group "intraday",
and run through ``intraday_job`` (requested by ``core_sales_sensor`` when the core has new
sales, or by ``salesflow materialize --today``). Nothing on the daily cadence depends on them;
the daily run after midnight closes the day in the partitioned raw and mart assets.
"""

import tempfile
from pathlib import Path

import dagster as dg

from assets.extract import CORE_RETRY, client_metadata, no_retry_for_bad_data
from pipelines.partitions import SHOP
from resources import (
    WAREHOUSE_POOL, CoreApiResource, FoldersResource, MailerResource, WarehouseResource,
)
from salesflow import intraday
from salesflow.errors import MailConfigError, MailDeliveryError

INTRADAY_GROUP = "intraday"
RAW_SALES_TODAY = dg.AssetKey(["raw", "sales_today"])
MARTS_TODAY = dg.AssetKey(["marts", "today"])


@dg.multi_asset(
    specs=[
        dg.AssetSpec(RAW_SALES_TODAY, group_name=INTRADAY_GROUP, kinds={"duckdb"},
                     description="Today's sales so far (the core's /sales/today), kept in raw.sales "
                     "and raw.sale_items merged by sale id: a refresh never duplicates a sale. "
                     "Provisional until the daily run after midnight closes the day."),
        dg.AssetSpec(MARTS_TODAY, group_name=INTRADAY_GROUP, kinds={"duckdb"}, deps=[RAW_SALES_TODAY],
                     description="Today's rows of marts.daily_sales and marts.product_daily_sales "
                     "marked provisional, and the marts.today row: orders, units, revenue and "
                     "average order so far, against the same weekday last week up to the same time."),
    ],
    check_specs=[
        dg.AssetCheckSpec("reconciles_with_core", asset=RAW_SALES_TODAY, blocking=True,
                          description="Today's orders, units and revenue in raw.* equal the core's "
                          "/sales/today; when they do not, today's marts are left as they were"),
    ],
    pool=WAREHOUSE_POOL,
    retry_policy=CORE_RETRY,
)
def today_so_far(context: dg.AssetExecutionContext, core: CoreApiResource,
                 warehouse: WarehouseResource, folders: FoldersResource, mailer: MailerResource):
    outage = intraday.OutageSettings.from_env()
    outage_meta = {}
    with no_retry_for_bad_data(), \
            tempfile.TemporaryDirectory(prefix="today-", dir=folders.spool) as tmp, \
            core.get_client(context.log) as client, warehouse.get_connection() as con:
        result = intraday.refresh_today(client, con, workdir=Path(tmp), log=context.log)
        meta = client_metadata(client)
        mail_failure = None
        if outage.enabled and result.reconciled:
            try:
                outage_meta = _tell_outage(context, con, result.as_of_ts, outage, folders, mailer)
            except dg.Failure as exc:  # today's figures are written: record them, then fail
                mail_failure = exc
                outage_meta = {"outage_email": f"not sent: {exc.description}"}
    common = {"day": str(result.day), "core_time": result.as_of_ts.isoformat(timespec="seconds"), **meta}
    yield dg.MaterializeResult(
        asset_key=RAW_SALES_TODAY,
        metadata={"dagster/row_count": result.written.sales, "fetched_sales": result.fetched_sales,
                  "replaced_sales": result.written.deleted_sales,
                  "download_bytes": result.download_bytes, **common},
    )
    yield dg.AssetCheckResult(
        check_name="reconciles_with_core", asset_key=RAW_SALES_TODAY, passed=result.reconciled,
        metadata={"differences": dg.MetadataValue.json(result.differences[:10])},
    )
    if not result.reconciled:
        raise dg.Failure(f"today's sales in the warehouse differ from the core's /sales/today: "
                         f"{result.differences[:3]}; today's marts were left as they were",
                         allow_retries=True)
    row = result.row
    yield dg.MaterializeResult(
        asset_key=MARTS_TODAY,
        metadata={
            "orders_so_far": row.today.orders, "units_so_far": row.today.units,
            "revenue_so_far": float(row.today.revenue),
            "compare_day": str(row.compare_day),
            "orders_same_time_last_week": row.compare.orders,
            "revenue_same_time_last_week": float(row.compare.revenue),
            "revenue_change_pct": None if row.revenue_change_pct is None else float(row.revenue_change_pct),
            "orders_change_pct": None if row.orders_change_pct is None else float(row.orders_change_pct),
            "summary": intraday.today_line(row.record(), SHOP.currency),
            **{f"rows_{k}": v for k, v in result.marts_rows.items()},
            **outage_meta,
            **common,
        },
    )
    if mail_failure is not None:
        raise mail_failure


def _tell_outage(context, con, now, outage: intraday.OutageSettings, folders: FoldersResource,
                 mailer: MailerResource) -> dict:
    """The optional outage alert: told once per gap to the alert recipients."""
    verdict = intraday.outage_verdict(con, now, hours=outage.hours, min_expected=outage.min_expected)
    sent = "no outage"
    if verdict.alert:
        context.log.warning(verdict.headline())
        try:
            recipients = mailer.recipients().for_alert("anomaly")
            delivery = intraday.alert_outage_once(
                con, mailer.mailer(folders.path("exports", "outbox")), verdict, recipients,
                shop_name=SHOP.shop_name)
        except (MailConfigError, MailDeliveryError) as exc:
            raise dg.Failure(f"{verdict.headline()}, but the alert could not be e-mailed: {exc}. "
                             "The next refresh tries again.") from None
        sent = ("no alert recipients configured" if not recipients else
                "already told for this gap" if delivery is None else
                f"{delivery.transport} to {len(recipients)} recipient(s)")
    return {"outage": verdict.headline() if verdict.alert else verdict.reason,
            "outage_expected_sales": float(verdict.expected), "outage_email": sent}


intraday_assets = [today_so_far]

intraday_job = dg.define_asset_job(
    name="intraday_job",
    selection=dg.AssetSelection.groups(INTRADAY_GROUP),
    description="Refresh today's figures so far from the core (provisional until the day closes).",
)
