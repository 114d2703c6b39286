"""Freshness checks on the raw and mart assets, evaluated by a sensor that runs by default.

Daily-partitioned assets must have yesterday's partition three hours after the daily
schedule; unpartitioned ones must have been updated within the last 26 hours.
"""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

from assets.extract import RAW_INVENTORY, RAW_PRODUCTS, RAW_SALE_ITEMS, RAW_SALES, RAW_STOCK_SNAPSHOTS
from assets.marts import (
    CUSTOMER_RFM,
    DAILY_SALES,
    KPIS,
    PRODUCT_DAILY_SALES,
    PROFIT_MONTHLY,
    STOCK_STATUS,
    TOP_PRODUCTS,
)
from pipelines.partitions import SHOP, daily_at

DEADLINE_HOURS_AFTER_SCHEDULE = 3


def _deadline_cron() -> str:
    hour, minute = daily_at()
    return f"{minute} {(hour + DEADLINE_HOURS_AFTER_SCHEDULE) % 24} * * *"


partition_freshness = dg.build_time_partition_freshness_checks(
    assets=[RAW_SALES, RAW_SALE_ITEMS, RAW_STOCK_SNAPSHOTS, DAILY_SALES, PRODUCT_DAILY_SALES, KPIS,
            TOP_PRODUCTS, STOCK_STATUS],
    deadline_cron=_deadline_cron(),
    timezone=SHOP.timezone,
)
update_freshness = dg.build_last_update_freshness_checks(
    assets=[RAW_PRODUCTS, RAW_INVENTORY, CUSTOMER_RFM, PROFIT_MONTHLY],
    lower_bound_delta=timedelta(hours=26),
)
freshness_checks = [*partition_freshness, *update_freshness]
freshness_sensor = dg.build_sensor_for_freshness_checks(
    freshness_checks=freshness_checks,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
