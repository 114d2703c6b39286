"""Jobs of the code location."""

import dagster as dg

# Everything for one day (or, as a single run, a range of days).
daily_job = dg.define_asset_job(
    name="daily_job",
    selection=dg.AssetSelection.all(),
    description="Extract from the core and materialize every asset for the day's partition.",
)
