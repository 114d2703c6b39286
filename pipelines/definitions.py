"""The code location: one Definitions object."""

import dagster as dg

from assets.extract import extract_assets
from assets.imported import imported_specs
from assets.intraday import intraday_assets, intraday_job
from assets.marts import mart_assets
from assets.ml import ml_assets
from assets.reorder import reorder_assets
from assets.reports import monthly_report_job, report_assets, weekly_report_job
from pipelines.automation import automation_sensor
from pipelines.freshness import freshness_checks, freshness_sensor
from pipelines.imports_job import import_jobs
from pipelines.jobs import daily_job, daily_schedule, extract_job
from pipelines.partitions import SHOP
from resources import CoreApiResource, FoldersResource, MailerResource, WarehouseResource
from sensors.core_sales import core_sales_sensors
from sensors.inbox import inbox_sensors
from sensors.run_failure import run_failure_email


def _optional(name: str) -> dg.EnvVar | str:
    """An optional setting: the variable when it is set, else empty (EnvVar needs it set)."""
    import os

    return dg.EnvVar(name) if name in os.environ else ""


resources = {
    "core": CoreApiResource(
        base_url=dg.EnvVar("SALESFLOW_CORE_URL"),
        phone=dg.EnvVar("SALESFLOW_CORE_PHONE"),
        password=dg.EnvVar("SALESFLOW_CORE_PASSWORD"),
        timezone=SHOP.timezone,
    ),
    "warehouse": WarehouseResource(database=dg.EnvVar("SALESFLOW_WAREHOUSE")),
    "folders": FoldersResource(home=dg.EnvVar("SALESFLOW_HOME")),
    "mailer": MailerResource(
        host=_optional("SALESFLOW_SMTP_HOST"),
        port=_optional("SALESFLOW_SMTP_PORT"),
        security=_optional("SALESFLOW_SMTP_SECURITY") or "starttls",
        user=_optional("SALESFLOW_SMTP_USER"),
        password=_optional("SALESFLOW_SMTP_PASSWORD"),
        sender=_optional("SALESFLOW_SMTP_SENDER"),
        unsubscribe=_optional("SALESFLOW_MAIL_UNSUBSCRIBE"),
        report_recipients=_optional("SALESFLOW_REPORT_RECIPIENTS"),
        alert_recipients=_optional("SALESFLOW_ALERT_RECIPIENTS"),
        ops_recipients=_optional("SALESFLOW_OPS_RECIPIENTS"),
    ),
}

defs = dg.Definitions(
    assets=[*extract_assets, *imported_specs, *mart_assets, *ml_assets, *reorder_assets,
            *report_assets, *intraday_assets],
    asset_checks=freshness_checks,
    jobs=[daily_job, extract_job, weekly_report_job, monthly_report_job, *import_jobs, intraday_job],
    schedules=[daily_schedule],
    sensors=[automation_sensor, freshness_sensor, run_failure_email, *inbox_sensors, *core_sales_sensors],
    resources=resources,
)
