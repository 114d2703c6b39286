"""Headless runs of the daily job (used by `salesflow materialize` and by tests)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from salesflow.core_client import CoreClient
from salesflow.settings import DEFAULTS, ShopSettings
from salesflow.warehouse import connect, table_counts


@dataclass
class RunSummary:
    success: bool
    run_id: str
    start: date
    end: date
    warehouse: Path
    tables: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def summary(self) -> str:
        span = str(self.start) if self.start == self.end else f"{self.start}..{self.end}"
        lines = [
            f"run {self.run_id} for {span}: {'succeeded' if self.success else 'FAILED'}",
            f"warehouse: {self.warehouse.resolve()}",
        ]
        lines += [f"  {table:28s} {rows:>12,d} rows" for table, rows in self.tables.items()]
        lines += [f"  failure: {f}" for f in self.failures]
        return "\n".join(lines)


def core_yesterday(shop: ShopSettings) -> date:
    with CoreClient(
        os.environ["SALESFLOW_CORE_URL"],
        os.environ["SALESFLOW_CORE_PHONE"],
        os.environ["SALESFLOW_CORE_PASSWORD"],
        timezone=shop.timezone,
    ) as client:
        return client.server_today() - timedelta(days=1)


def warehouse_has_sales(path: Path) -> bool:
    if not path.exists():
        return False
    with connect(path, read_only=True) as con:
        found = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name='raw' AND table_name='sales'"
        ).fetchone()[0]
        return bool(found) and con.execute("SELECT count(*) > 0 FROM raw.sales").fetchone()[0]


def run_daily(
    *,
    as_of: date | None = None,
    since: date | None = None,
    full: bool = False,
    instance: dg.DagsterInstance | None = None,
    resources: dict | None = None,
    warehouse_path: Path | None = None,
    log_level: str = "INFO",
    reports: bool = True,
) -> RunSummary:
    """Materialize every asset for ``as_of`` (default: the core's yesterday), then the latest
    complete week's and month's reports.

    On an empty warehouse, or with ``full``, the whole history from the first partition up to
    ``as_of`` is loaded as one run (the core's full listing is read once).
    """
    from pipelines.definitions import defs
    from pipelines.partitions import SHOP, monthly_partitions, weekly_partitions

    from resources import FoldersResource, WarehouseResource

    warehouse_path = Path(
        warehouse_path or os.environ.get("SALESFLOW_WAREHOUSE") or DEFAULTS["SALESFLOW_WAREHOUSE"]
    )
    # The run writes where the summary reads: the warehouse resource follows warehouse_path.
    resources = {
        "warehouse": WarehouseResource(database=str(warehouse_path)),
        "folders": FoldersResource(home=os.environ.get("SALESFLOW_HOME") or DEFAULTS["SALESFLOW_HOME"]),
        **(resources or {}),
    }
    as_of = as_of or core_yesterday(SHOP)
    first = date.fromisoformat(SHOP.partitions_start)
    if as_of < first:
        raise ValueError(f"as-of {as_of} is before the first partition {first} (SALESFLOW_PARTITIONS_START)")
    if full or not warehouse_has_sales(warehouse_path):
        start = first
    else:
        start = since or as_of
    start = max(start, first)

    job = defs.resolve_job_def("daily_job")
    own_instance = instance is None
    if own_instance:
        instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()
    try:
        kwargs: dict = {
            "instance": instance,
            "raise_on_error": False,
            "resources": resources,
            "run_config": {"loggers": {"console": {"config": {"log_level": log_level}}}},
        }
        if start == as_of:
            kwargs["partition_key"] = as_of.isoformat()
        else:
            kwargs["tags"] = {
                ASSET_PARTITION_RANGE_START_TAG: start.isoformat(),
                ASSET_PARTITION_RANGE_END_TAG: as_of.isoformat(),
            }
        result = job.execute_in_process(**kwargs)
        failures = _failures(result)
        if result.success and reports:
            for job_name, partitions in (("weekly_report_job", weekly_partitions),
                                         ("monthly_report_job", monthly_partitions)):
                key = _latest_complete(partitions, as_of, first)
                if key is None:
                    continue
                report_run = defs.resolve_job_def(job_name).execute_in_process(
                    instance=instance, raise_on_error=False, resources=resources, partition_key=key,
                    run_config={"loggers": {"console": {"config": {"log_level": log_level}}}})
                failures += _failures(report_run)
    finally:
        if own_instance:
            instance.dispose()
    tables = {}
    if warehouse_path.exists():
        with connect(warehouse_path, read_only=True) as con:
            tables = table_counts(con)
    return RunSummary(result.success and not failures, result.run_id, start, as_of, warehouse_path, tables,
                      failures)


def _failures(result) -> list[str]:
    return [
        f"{ev.step_key}: {ev.event_specific_data.error.message.strip().splitlines()[0]}"
        for ev in result.all_events
        if ev.is_step_failure and ev.event_specific_data and ev.event_specific_data.error
    ]


def _latest_complete(partitions: dg.TimeWindowPartitionsDefinition, as_of: date, start: date) -> str | None:
    """The latest weekly/monthly partition that ends on or before ``as_of`` and begins on or
    after ``start`` (the first daily partition)."""
    from datetime import datetime, time, timezone

    now = datetime.combine(as_of + timedelta(days=1), time(23, 59), tzinfo=timezone.utc)
    keys = partitions.get_partition_keys(current_time=now)
    if not keys:
        return None
    key = keys[-1]
    window = partitions.time_window_for_partition_key(key)
    if window.start.date() < start or (window.end.date() - timedelta(days=1)) > as_of:
        return None
    return key
