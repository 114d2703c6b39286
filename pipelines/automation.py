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


def after_period_ends(cron_schedule: str, cron_timezone: str) -> dg.AutomationCondition:
    """For a weekly or monthly report: its latest complete period, once per tick of
    ``cron_schedule`` (the period's end), as soon as every input has been updated since the
    tick (the last day's run lands after it), no day of the period lacks an input, none is
    being materialized, and no blocking check on an input has failed. A report held back waits
    for the next evaluation, not for the next tick."""
    blocking_failed = dg.AutomationCondition.any_checks_match(
        dg.AutomationCondition.check_failed(), blocking_only=True)
    return (
        dg.AutomationCondition.on_cron(cron_schedule, cron_timezone)
        & ~dg.AutomationCondition.any_deps_missing()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.any_deps_match(blocking_failed)
    ).with_label(f"after the period ends ({cron_schedule}) with every input in and its checks passed")
