"""Reports (PDF + Excel per kind and period) and the alert digest e-mail."""

import dagster as dg

from assets.marts import DAILY_SALES, EXPENSES_MONTHLY, KPIS, PROFIT_MONTHLY, STOCK_STATUS, TOP_PRODUCTS
from pipelines.automation import FOLLOW_UPSTREAM, after_period_ends
from pipelines.partitions import (
    SHOP,
    daily_partitions,
    monthly_partitions,
    partition_dates,
    weekly_partitions,
)
from resources import WAREHOUSE_POOL, FoldersResource, MailerResource, WarehouseResource
from salesflow.alerts import run_alerts, send_report_once
from salesflow.errors import MailConfigError, MailDeliveryError
from salesflow.notices import send_queued_notices
from salesflow.reports import files as report_files

SALES_FORECAST = dg.AssetKey(["ml", "sales_forecast"])
SALES_ANOMALIES = dg.AssetKey(["ml", "sales_anomalies"])
ALERTS = dg.AssetKey(["alerts", "digest"])
REORDER_SUGGESTIONS = dg.AssetKey(["marts", "reorder_suggestions"])
REPORT_INPUTS = [DAILY_SALES, KPIS, TOP_PRODUCTS, STOCK_STATUS, EXPENSES_MONTHLY, PROFIT_MONTHLY,
                 SALES_FORECAST, SALES_ANOMALIES]


def _write_and_send(context: dg.AssetExecutionContext, kind: str, warehouse: WarehouseResource,
                    folders: FoldersResource, mailer: MailerResource) -> dg.MaterializeResult:
    start, as_of = partition_dates(context)
    root = folders.path("exports", "reports")
    try:
        mail = mailer.mailer(folders.path("exports", "outbox"))
        recipients = mailer.recipients().for_report(kind)
    except MailConfigError as exc:
        raise dg.Failure(f"mail settings: {exc}", allow_retries=False) from None
    with warehouse.get_connection() as con:
        written = report_files.write_report(con, kind, as_of, root, SHOP)
        try:
            delivery = send_report_once(con, mail, written, recipients)
        except MailDeliveryError as exc:
            raise dg.Failure(
                f"the {kind} report for {as_of} is written ({written.pdf}) but could not be e-mailed: "
                f"{exc}. Rerun the partition to send it.") from None
    pruned = report_files.prune_reports(root, report_files.keep_days_from_env(), as_of)
    sent = ("already sent earlier" if delivery is None and recipients else
            "no recipients configured" if not recipients else
            f"{delivery.transport} to {len(recipients)} recipient(s)")
    return dg.MaterializeResult(metadata={
        "as_of": str(as_of),
        "covers": f"{start}..{as_of}" if start != as_of else str(as_of),
        "pdf": dg.MetadataValue.path(str(written.pdf)),
        "xlsx": dg.MetadataValue.path(str(written.xlsx)),
        "preview": dg.MetadataValue.md(report_files.preview_markdown(written)),
        "email": sent,
        "pruned_folders": len(pruned),
    })


@dg.asset(
    key=dg.AssetKey(["reports", "daily"]), group_name="reports", kinds={"pdf", "excel"},
    partitions_def=daily_partitions, deps=REPORT_INPUTS, pool=WAREHOUSE_POOL,
    automation_condition=FOLLOW_UPSTREAM,
    backfill_policy=dg.BackfillPolicy.single_run(),
    description="The day's report as PDF and Excel under exports/reports/daily/<date>/, e-mailed once. "
                "A range run writes the report of its last day only.",
)
def daily_report(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                 folders: FoldersResource, mailer: MailerResource) -> dg.MaterializeResult:
    return _write_and_send(context, "daily", warehouse, folders, mailer)


# The ticks at which a period has ended (midnight in the shop's timezone, like the
# partitions): from then on the report waits for its last day's inputs and their checks.
WEEKLY_REPORT_CRON = "0 0 * * 1"
MONTHLY_REPORT_CRON = "0 0 1 * *"


def _periodic_report(kind: str, partitions: dg.TimeWindowPartitionsDefinition, covers: str,
                     cron: str):
    @dg.asset(
        key=dg.AssetKey(["reports", kind]), group_name="reports", kinds={"pdf", "excel"},
        partitions_def=partitions, deps=REPORT_INPUTS, pool=WAREHOUSE_POOL,
        automation_condition=after_period_ends(cron, SHOP.timezone),
        description=f"{covers} report as PDF and Excel under exports/reports/{kind}/<last day>/, "
                    "requested once the period has ended and its last day's inputs are in with "
                    "their blocking checks passed.",
    )
    def report(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
               folders: FoldersResource, mailer: MailerResource) -> dg.MaterializeResult:
        return _write_and_send(context, kind, warehouse, folders, mailer)

    return report


weekly_report = _periodic_report("weekly", weekly_partitions, "Monday..Sunday", WEEKLY_REPORT_CRON)
monthly_report = _periodic_report("monthly", monthly_partitions, "Calendar-month", MONTHLY_REPORT_CRON)


@dg.asset(
    key=ALERTS, group_name="alerts", kinds={"email"}, partitions_def=daily_partitions,
    # the reorder list values the stock alerts and rides along as a workbook (named by its key:
    # assets.reorder imports this module)
    deps=[SALES_ANOMALIES, STOCK_STATUS, SALES_FORECAST, REORDER_SUGGESTIONS], pool=WAREHOUSE_POOL,
    automation_condition=FOLLOW_UPSTREAM,
    backfill_policy=dg.BackfillPolicy.single_run(),
    description="One digest of new anomaly and stock alerts ranked by the money at stake: the top "
                "N as cards, every alert and the reorder list as workbooks; the first run (or a "
                "flood) sends one current-state summary. The ledger (ops.alerts_pending / "
                "ops.alerts_sent) sends every alert once; when SMTP is down the run fails and the "
                "alerts go out with the next run.",
)
def alert_digest(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                 folders: FoldersResource, mailer: MailerResource) -> dg.MaterializeResult:
    _, as_of = partition_dates(context)
    try:
        mail = mailer.mailer(folders.path("exports", "outbox"))
        recipients = mailer.recipients()
    except MailConfigError as exc:
        raise dg.Failure(f"mail settings: {exc}", allow_retries=False) from None
    with warehouse.get_connection() as con:
        try:
            result = run_alerts(con, as_of, mail, recipients, shop_name=SHOP.shop_name)
        except MailDeliveryError as exc:
            raise dg.Failure(str(exc), allow_retries=False) from None
        # import results the server refused earlier go out within a day, not with the next import
        notices = send_queued_notices(con, mail)
    return dg.MaterializeResult(metadata={"as_of": str(as_of), **result.metadata(),
                                          "import_notices_sent": len(notices.sent),
                                          "import_notices_waiting": notices.waiting})


report_assets = [daily_report, weekly_report, monthly_report, alert_digest]

# run by the headless runner after the daily job, and by hand from the UI
weekly_report_job = dg.define_asset_job("weekly_report_job", selection=[weekly_report],
                                        partitions_def=weekly_partitions)
monthly_report_job = dg.define_asset_job("monthly_report_job", selection=[monthly_report],
                                         partitions_def=monthly_partitions)
