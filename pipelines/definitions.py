"""The code location: one Definitions object."""

import dagster as dg

from assets.extract import extract_assets
from pipelines.jobs import daily_job
from pipelines.partitions import SHOP
from resources import CoreApiResource, WarehouseResource

resources = {
    "core": CoreApiResource(
        base_url=dg.EnvVar("SALESFLOW_CORE_URL"),
        phone=dg.EnvVar("SALESFLOW_CORE_PHONE"),
        password=dg.EnvVar("SALESFLOW_CORE_PASSWORD"),
        timezone=SHOP.timezone,
    ),
    "warehouse": WarehouseResource(database=dg.EnvVar("SALESFLOW_WAREHOUSE")),
}

defs = dg.Definitions(
    assets=[*extract_assets],
    jobs=[daily_job],
    resources=resources,
)
