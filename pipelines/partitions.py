"""Daily partitions by sale date in the shop's timezone (read when the code location loads)."""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta

import dagster as dg
from salesflow.settings import ShopSettings

SHOP = ShopSettings.from_env()

# The last partition is yesterday: the latest complete day in the shop's timezone.
daily_partitions = dg.DailyPartitionsDefinition(
    start_date=SHOP.partitions_start, timezone=SHOP.timezone, end_offset=0
)


def days_run_args(first: date, last: date, tags: dict[str, str]) -> dict:
    """Keyword arguments of ``execute_in_process`` / ``materialize`` for the daily partitions
    ``first..last`` as one run: a partition key for one day, else partition-range tags (the
    assets' single-run backfill policy makes the range one run), merged into ``tags``."""
    from dagster._core.storage.tags import (
        ASSET_PARTITION_RANGE_END_TAG,
        ASSET_PARTITION_RANGE_START_TAG,
    )

    if first == last:
        return {"partition_key": first.isoformat(), "tags": dict(tags)}
    return {"tags": {**tags, ASSET_PARTITION_RANGE_START_TAG: first.isoformat(),
                     ASSET_PARTITION_RANGE_END_TAG: last.isoformat()}}


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


def daily_at(environ=None) -> tuple[int, int]:
    """``SALESFLOW_DAILY_AT`` as (hour, minute); ``HH:MM`` in the shop's timezone."""
    text = ((os.environ if environ is None else environ).get("SALESFLOW_DAILY_AT") or "06:00").strip()
    try:
        hour_text, minute_text = text.split(":")
        hour, minute = int(hour_text), int(minute_text)
    except ValueError:
        raise ValueError(f"SALESFLOW_DAILY_AT must look like 06:00, got {text!r}") from None
    if not (0 <= hour < 24 and 0 <= minute < 60):
        raise ValueError(f"SALESFLOW_DAILY_AT must be a time of day, got {text!r}")
    return hour, minute
