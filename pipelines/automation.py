"""How derived assets follow their inputs without a second schedule."""

import dagster as dg

# Inputs that only imports fill (group "imports": expenses, customers, lead times) may never
# have been imported: an input of theirs that is missing holds nothing back.
IMPORTED_INPUTS = dg.AssetSelection.groups("imports")
_ANY_DEPS_MISSING = dg.AutomationCondition.any_deps_missing().ignore(IMPORTED_INPUTS)

# Follow new upstream data; wait for upstream blocking checks to pass. Partitioned assets
# follow their latest partition (history is loaded by backfills of daily_job).
FOLLOW_UPSTREAM = (
    dg.AutomationCondition.eager().replace("any_deps_missing", _ANY_DEPS_MISSING)
    & dg.AutomationCondition.all_deps_blocking_checks_passed()
)

# No blocking check of an input failed on its latest data. Weaker than "passed": raw sales an
# import rewrote are materialized by the import run, which validated them itself but cannot run
# the checks against the core; their last extract's checks do not hold the marts back.
NO_BLOCKING_CHECK_FAILED = ~dg.AutomationCondition.any_deps_match(
    dg.AutomationCondition.any_checks_match(dg.AutomationCondition.check_failed(), blocking_only=True)
).with_label("no blocking check of an input failed")

# An input requested on this tick: wait for its run (and its checks) before following it.
# (Dagster sees a request of the same tick only for inputs with the same partitions.)
_INPUT_REQUESTED = dg.AutomationCondition.any_deps_match(
    dg.AutomationCondition.will_be_requested()).with_label("an input is requested on this tick")

# Inputs that are one snapshot for all days (the catalogue and the inventory, replaced by every
# extract): their update concerns the latest day, not every day of history.
ONE_SNAPSHOT_INPUTS = dg.AssetSelection.assets(["raw", "products"], ["raw", "inventory"])
# Raw data, which reaches the marts over all days through the marts of its days.
RAW_INPUTS = dg.AssetSelection.groups("extract")


# Nothing of the asset or its inputs is requested or running, and no blocking check of an input
# failed on its latest data.
_SETTLED = (
    ~dg.AutomationCondition.any_deps_in_progress()
    & ~_INPUT_REQUESTED
    & ~dg.AutomationCondition.in_progress()
    & NO_BLOCKING_CHECK_FAILED
)


def _follow(trigger: dg.AutomationCondition, label: str) -> dg.AutomationCondition:
    """``trigger`` since the asset was last requested or updated, once no input partition is
    missing and everything has settled (``_SETTLED``)."""
    return (trigger.since_last_handled() & ~_ANY_DEPS_MISSING & _SETTLED).with_label(label)


# For the marts of a day (daily sales, KPIs as of the day): they follow an input's update in any
# partition, so that an import that rewrites past days' raw sales rebuilds exactly those days;
# the latest day also follows the catalogue and inventory and is filled when it goes missing
# (history is loaded by backfills). The as-of marts follow the daily marts once these are in
# and checked.
FOLLOW_ANY_DAY = _follow(
    (dg.AutomationCondition.in_latest_time_window()
     & (dg.AutomationCondition.newly_missing() | dg.AutomationCondition.any_deps_updated()))
    | dg.AutomationCondition.any_deps_updated().ignore(ONE_SNAPSHOT_INPUTS),
    "follows updated inputs of any day, no blocking check failed")

# For the marts over all days (customers, monthly expenses and profit): they follow the daily
# marts and the imported inputs, not the raw sales beneath the daily marts (those reach them
# through the daily marts, rebuilt first: following both would build them twice).
FOLLOW_MARTS = _follow(
    dg.AutomationCondition.newly_missing()
    | dg.AutomationCondition.any_deps_updated().ignore(RAW_INPUTS),
    "follows the daily marts and imports, no blocking check failed")

# For an asset over many inputs built by separate steps (the exports of every mart): once an
# input has changed, wait until none is in progress or about to be requested, then run once
# for the lot, not once per input.
AFTER_INPUTS_SETTLE = (
    dg.AutomationCondition.any_deps_updated().since_last_handled() & _SETTLED
).with_label("once its changed inputs are all rebuilt")

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
