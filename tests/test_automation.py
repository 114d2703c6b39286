"""Derived assets follow new raw data through their automation conditions (no second schedule),
and a failed blocking check upstream holds them back."""

from datetime import datetime, timedelta, timezone

import dagster as dg
from dagster._core.utils import make_new_run_id

from pipelines.definitions import defs
from pipelines.partitions import daily_partitions

RAW = [["raw", "products"], ["raw", "inventory"], ["raw", "sales"], ["raw", "sale_items"],
       ["raw", "stock_snapshots"]]
PARTITIONED_RAW = {("raw", "sales"), ("raw", "sale_items"), ("raw", "stock_snapshots")}


def _land_raw(instance, partition: str, *, checks_pass: bool = True) -> None:
    """What a run of extract_job leaves behind: the raw assets and their checks' results."""
    graph = defs.resolve_asset_graph()
    for key in RAW:
        part = partition if tuple(key) in PARTITIONED_RAW else None
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key, partition=part))
        for check_key in graph.get_check_keys_for_assets({dg.AssetKey(key)}):
            instance.report_runless_asset_event(dg.AssetCheckEvaluation(
                asset_key=check_key.asset_key, check_name=check_key.name, passed=checks_pass,
                partition=part))


def _requested(result) -> dict[str, int]:
    return {r.key.to_user_string(): r.true_subset.size for r in result.results
            if r.true_subset.size > 0 and isinstance(r.key, dg.AssetKey)}


def _land(instance, keys, partition: str) -> None:
    graph = defs.resolve_asset_graph()
    for key in keys:
        key = dg.AssetKey.from_user_string(key)
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key, partition=partition))
        for check_key in graph.get_check_keys_for_assets({key}):
            instance.report_runless_asset_event(dg.AssetCheckEvaluation(
                asset_key=key, check_name=check_key.name, passed=True, partition=partition))


def _history(instance, before: str) -> None:
    """Every daily asset materialized for the days before ``before`` (a backfill did it), the
    unpartitioned ones once."""
    graph = defs.resolve_asset_graph()
    days = [k for k in daily_partitions.get_partition_keys() if k < before]
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if node.partitions_def is None:
            instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key))
        elif node.partitions_def == daily_partitions:
            for day in days:
                instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key, partition=day))


def test_new_raw_data_flows_down_to_marts_ml_report_and_alerts_for_the_latest_day():
    latest = daily_partitions.get_last_partition_key()
    with dg.DagsterInstance.ephemeral() as instance:
        _history(instance, latest)
        tick = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        assert tick.total_requested == 0  # nothing new upstream yet
        _land_raw(instance, latest)
        tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
        requested = _requested(tick)
        assert set(requested) == {"marts/daily_sales", "marts/product_daily_sales", "marts/customer_daily"}
        assert requested["marts/daily_sales"] == 1  # the latest day only, not the history
        _land(instance, requested, latest)
        tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
        requested = _requested(tick)
        for key in ("marts/kpis", "marts/stock_status", "ml/sales_forecast", "ml/sales_anomalies"):
            assert requested.get(key) == 1, sorted(requested)
        _land(instance, requested, latest)
        tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
        requested = _requested(tick)
        assert requested.get("reports/daily") == 1 and requested.get("alerts/digest") == 1, sorted(requested)
        assert "reports/weekly" not in requested  # on its own schedule


def test_a_failed_blocking_check_on_raw_holds_the_marts_back():
    latest = daily_partitions.get_last_partition_key()
    with dg.DagsterInstance.ephemeral() as instance:
        tick = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        _land_raw(instance, latest, checks_pass=False)
        tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
        assert _requested(tick) == {}


# -- weekly and monthly reports: after the period ends, once its last day is in -----------------
def _last_tick(now: datetime, *, monthly: bool = False) -> datetime:
    """Midnight of the latest Monday (or 1st of the month) at or before ``now`` (UTC in tests)."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if monthly:
        return midnight.replace(day=1)
    return midnight - timedelta(days=midnight.weekday())


def _land_day(instance, day: str, *, failing_check: str | None = None) -> None:
    """What a run of the daily job leaves for ``day`` (each call its own run, so that a day can
    be run again): every daily asset and the unpartitioned marts it refreshes, and their
    checks, passing unless named in ``failing_check``."""
    from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData

    run_id = make_new_run_id()

    def record(event_type, data) -> None:
        instance.report_dagster_event(DagsterEvent(event_type.value, job_name="daily_job",
                                                   event_specific_data=data), run_id=run_id)

    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if node.partitions_def is None and key.path[0] == "marts":
            part = None
        elif node.partitions_def == daily_partitions:
            part = day
        else:
            continue
        record(DagsterEventType.ASSET_MATERIALIZATION,
               StepMaterializationData(dg.AssetMaterialization(asset_key=key, partition=part)))
        for check_key in graph.get_check_keys_for_assets({key}):
            record(DagsterEventType.ASSET_CHECK_EVALUATION, dg.AssetCheckEvaluation(
                asset_key=key, check_name=check_key.name, passed=check_key.name != failing_check,
                partition=part))


def _recent_history(instance, first: str, before: str) -> None:
    """Every day from ``first`` up to (not including) ``before`` as the daily job leaves it."""
    for day in daily_partitions.get_partition_keys():
        if first <= day < before:
            _land_day(instance, day)


def _report_ticks(instance, tick: datetime, *steps) -> list[dict[str, list[str]]]:
    """What each evaluation requested of the weekly and monthly reports (partition keys): one
    before the tick, one after it, then one after each of ``steps`` (callables that land data)."""

    def reports(result) -> dict[str, list[str]]:
        return {r.key.to_user_string(): sorted(r.true_subset.expensively_compute_partition_keys())
                for r in result.results if isinstance(r.key, dg.AssetKey)
                and r.key.path[0] == "reports" and r.key.path[1] != "daily" and r.true_subset.size}

    result = dg.evaluate_automation_conditions(defs=defs, instance=instance,
                                               evaluation_time=tick - timedelta(hours=1))
    out = [reports(result)]
    for step in (None, *steps):
        if step is not None:
            step()
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
        out.append(reports(result))
    return out


def _weekly_tick() -> datetime:
    now = datetime.now(timezone.utc)
    tick = _last_tick(now)
    return tick - timedelta(days=7) if now - tick < timedelta(minutes=5) else tick


def _day(tick: datetime, days_before: int) -> str:
    return (tick - timedelta(days=days_before)).date().isoformat()


def test_the_weekly_report_waits_for_its_last_days_marts_and_checks():
    tick = _weekly_tick()
    week, saturday, sunday = _day(tick, 7), _day(tick, 2), _day(tick, 1)
    with dg.DagsterInstance.ephemeral() as instance:
        _recent_history(instance, _day(tick, 10), sunday)  # up to Saturday, not Sunday
        ticks = _report_ticks(instance, tick,
                              lambda: _land_day(instance, saturday),  # a rerun of Saturday
                              lambda: _land_day(instance, sunday),
                              lambda: None)
    # the week has ended; Sunday's marts are missing, even once Saturday's are rerun: held
    assert ticks[:3] == [{}, {}, {}]
    # Sunday's marts land with their checks passed: the week's report is requested, once
    assert ticks[3] == {"reports/weekly": [week]}
    assert ticks[4] == {}


def test_a_failed_blocking_check_on_the_last_day_holds_the_weekly_report_until_it_passes():
    tick = _weekly_tick()
    week, sunday = _day(tick, 7), _day(tick, 1)
    with dg.DagsterInstance.ephemeral() as instance:
        _recent_history(instance, _day(tick, 10), sunday)
        ticks = _report_ticks(
            instance, tick,
            lambda: _land_day(instance, sunday, failing_check="reconciles_with_raw"),
            lambda: _land_day(instance, sunday))  # the rerun passes
    assert ticks[:3] == [{}, {}, {}]
    assert ticks[3] == {"reports/weekly": [week]}


def test_the_monthly_report_waits_for_the_months_last_day():
    now = datetime.now(timezone.utc)
    tick = _last_tick(now, monthly=True)
    if now - tick < timedelta(minutes=5):
        tick = _last_tick(tick - timedelta(days=1), monthly=True)
    month_start = _last_tick(tick - timedelta(days=1), monthly=True)
    last_day = _day(tick, 1)
    with dg.DagsterInstance.ephemeral() as instance:
        _recent_history(instance, month_start.date().isoformat(), last_day)
        ticks = _report_ticks(instance, tick, lambda: _land_day(instance, last_day))
    assert "reports/monthly" not in ticks[1]
    assert ticks[2].get("reports/monthly") == [month_start.date().isoformat()]
