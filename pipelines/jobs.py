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

import dagster as dg

from pipelines.freshness import freshness_checks
from pipelines.partitions import SHOP, daily_at

RAW_GROUP = "extract"

# Weekly and monthly reports have their own partitions and schedules.
PERIODIC_REPORTS = dg.AssetSelection.assets(["reports", "weekly"], ["reports", "monthly"])
# Freshness checks are evaluated by their sensor, not inside runs.
FRESHNESS = dg.AssetSelection.checks(*freshness_checks)

# Today's figures so far are refreshed by intraday_job, never by the daily cadence.
INTRADAY = dg.AssetSelection.groups("intraday")

daily_job = dg.define_asset_job(
    name="daily_job",
    selection=dg.AssetSelection.all() - PERIODIC_REPORTS - FRESHNESS - INTRADAY,
    description="Every asset for a day, or for a range of days as a single run (backfills).",
)

extract_job = dg.define_asset_job(
    name="extract_job",
    selection=dg.AssetSelection.groups(RAW_GROUP) - FRESHNESS,
    description="Read products, inventory, stock and the day's sales from the core into raw.*.",
)


_HOUR, _MINUTE = daily_at()

daily_schedule = dg.build_schedule_from_partitioned_job(
    extract_job,
    name="daily_schedule",
    hour_of_day=_HOUR,
    minute_of_hour=_MINUTE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description=f"Yesterday's partition at {_HOUR:02d}:{_MINUTE:02d} {SHOP.timezone}.",
)
