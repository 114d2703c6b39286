"""The code location: one Definitions object."""

import dagster as dg

from assets.extract import extract_assets
from assets.marts import mart_assets
from pipelines.jobs import daily_job, daily_schedule
from pipelines.partitions import SHOP
from resources import CoreApiResource, FoldersResource, WarehouseResource

resources = {
    "core": CoreApiResource(
        base_url=dg.EnvVar("SALESFLOW_CORE_URL"),
        phone=dg.EnvVar("SALESFLOW_CORE_PHONE"),
        password=dg.EnvVar("SALESFLOW_CORE_PASSWORD"),
        timezone=SHOP.timezone,
    ),
    "warehouse": WarehouseResource(database=dg.EnvVar("SALESFLOW_WAREHOUSE")),
    "folders": FoldersResource(home=dg.EnvVar("SALESFLOW_HOME")),
}

defs = dg.Definitions(
    assets=[*extract_assets, *mart_assets],
    jobs=[daily_job],
    schedules=[daily_schedule],
    resources=resources,
)
