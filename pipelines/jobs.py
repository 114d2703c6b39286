"""Jobs of the code location."""

import dagster as dg

from pipelines.partitions import daily_partitions

# Everything for one day (or, as a single run, a range of days).
daily_job = dg.define_asset_job(
    name="daily_job",
    selection=dg.AssetSelection.all(),
    partitions_def=daily_partitions,
    description="Extract from the core and materialize every asset for the day's partition.",
)
