"""Jobs, schedules and the automation around them.

- ``extract_job`` runs on ``daily_schedule`` every morning (``SALESFLOW_DAILY_AT``, default
  06:00, in the shop's timezone) for yesterday's partition: it reads the core into ``raw.*``.
- Marts, forecasts, anomalies, reports and alerts carry automation conditions: they follow
  new raw data (the automation sensor, running by default, requests them), and never run while
  a blocking check of an upstream asset has failed.
- ``daily_job`` selects every asset: one run for a day or, with a partition range, for years
  of history (`make run`, `salesflow materialize`, backfills from the UI).
"""

from __future__ import annotations

import os

import dagster as dg

from pipelines.partitions import SHOP

RAW_GROUP = "extract"

# Weekly and monthly reports have their own partitions and schedules.
PERIODIC_REPORTS = dg.AssetSelection.assets(["reports", "weekly"], ["reports", "monthly"])

daily_job = dg.define_asset_job(
    name="daily_job",
    selection=dg.AssetSelection.all() - PERIODIC_REPORTS,
    description="Every asset for a day, or for a range of days as a single run (backfills).",
)

extract_job = dg.define_asset_job(
    name="extract_job",
    selection=dg.AssetSelection.groups(RAW_GROUP),
    description="Read products, inventory, stock and the day's sales from the core into raw.*.",
)


def daily_at(environ=None) -> tuple[int, int]:
    """``SALESFLOW_DAILY_AT`` as (hour, minute); ``HH:MM`` in the shop's timezone."""
    text = ((environ or os.environ).get("SALESFLOW_DAILY_AT") or "06:00").strip()
    try:
        hour_text, minute_text = text.split(":")
        hour, minute = int(hour_text), int(minute_text)
    except ValueError:
        raise ValueError(f"SALESFLOW_DAILY_AT must look like 06:00, got {text!r}") from None
    if not (0 <= hour < 24 and 0 <= minute < 60):
        raise ValueError(f"SALESFLOW_DAILY_AT must be a time of day, got {text!r}")
    return hour, minute


_HOUR, _MINUTE = daily_at()

daily_schedule = dg.build_schedule_from_partitioned_job(
    extract_job,
    name="daily_schedule",
    hour_of_day=_HOUR,
    minute_of_hour=_MINUTE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description=f"Yesterday's partition at {_HOUR:02d}:{_MINUTE:02d} {SHOP.timezone}.",
)
