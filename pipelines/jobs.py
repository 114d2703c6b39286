"""Jobs of the code location."""

import dagster as dg

# Everything for one day (or, as a single run, a range of days).
daily_job = dg.define_asset_job(
    name="daily_job",
    selection=dg.AssetSelection.all(),
    description="Extract from the core and materialize every asset for the day's partition.",
)

# Every morning at 06:00 shop time, the day before (the latest complete day).
daily_schedule = dg.build_schedule_from_partitioned_job(
    daily_job,
    hour_of_day=6,
    minute_of_hour=0,
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
