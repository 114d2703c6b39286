"""Daily partitions by sale date in the shop's timezone (read when the code location loads)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import dagster as dg
from salesflow.settings import ShopSettings

SHOP = ShopSettings.from_env()

# The last partition is yesterday: the latest complete day in the shop's timezone.
daily_partitions = dg.DailyPartitionsDefinition(
    start_date=SHOP.partitions_start, timezone=SHOP.timezone, end_offset=0
)


def partition_dates(context: dg.AssetExecutionContext) -> tuple[date, date]:
    """First and last calendar day (inclusive) of the run's partition range."""
    window = context.partition_time_window
    start: datetime = window.start
    end: datetime = window.end
    return start.date(), (end - timedelta(days=1)).date()


# Weekly reports cover Monday..Sunday; monthly reports the calendar month. Both end on the
# last day of their window (the report's as-of day).
weekly_partitions = dg.WeeklyPartitionsDefinition(
    start_date=SHOP.partitions_start, timezone=SHOP.timezone, day_offset=1
)
monthly_partitions = dg.MonthlyPartitionsDefinition(
    start_date=SHOP.partitions_start, timezone=SHOP.timezone
)
