"""Derived assets follow new raw data through their automation conditions (no second schedule),
and a failed blocking check upstream holds them back."""

import dagster as dg

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
