"""How derived assets follow their inputs without a second schedule."""

import dagster as dg

# Follow new upstream data; wait for upstream blocking checks to pass. Partitioned assets
# follow their latest partition (history is loaded by backfills of daily_job).
FOLLOW_UPSTREAM = dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()

automation_sensor = dg.AutomationConditionSensorDefinition(
    "automation_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
)
