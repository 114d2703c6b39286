"""Headless runs of the daily job (used by `salesflow materialize` and by tests)."""

from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Iterator

import dagster as dg
from dagster._core.utils import make_new_run_id

from salesflow import run_ledger
from salesflow.core_client import CoreClient
from salesflow.settings import DEFAULTS, ShopSettings
from salesflow.warehouse import connect, table_counts

# Every run of the runner is tagged with the process that runs it, so that a later run can tell
# a run whose process was killed from one still going.
HOST_TAG, PID_TAG, PROCESS_TAG = "salesflow/host", "salesflow/pid", "salesflow/process_start"


@dataclass
class RunSummary:
    success: bool
    run_id: str
    start: date
    end: date
    warehouse: Path
    tables: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        span = str(self.start) if self.start == self.end else f"{self.start}..{self.end}"
        lines = [
            f"run {self.run_id} for {span}: {'succeeded' if self.success else 'FAILED'}",
            *self.notes,
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


def plan_start(path: Path, first: date, as_of: date, *, since: date | None = None,
               full: bool = False) -> tuple[date, list[str]]:
    """The first day the run for ``as_of`` must cover, and why when earlier than asked.

    Besides ``since`` (or ``as_of`` alone): every range an earlier run started and did not
    complete (killed or failed), and every day from the first partition whose marts are missing
    or disagree with raw data (an empty warehouse misses them all)."""
    asked = first if full else max(since or as_of, first)
    if not path.exists():
        return first, []
    with connect(path, read_only=True) as con:
        interrupted = run_ledger.open_start(con, as_of)
        missing = run_ledger.first_stale_day(con, first, as_of)
    notes = []
    if interrupted is not None and interrupted < asked:
        notes.append(f"completing an interrupted run from {interrupted}")
    if missing is not None and missing < asked:
        notes.append(f"marts missing or older than raw data from {missing}")
    start = min(d for d in (asked, interrupted, missing) if d is not None)
    return max(start, first), notes


def _process_state(pid: int) -> tuple[str, str] | None:
    """(state, start time) of a process from /proc, or None when it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], fields[19]


def _process_alive(pid: int, started: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    state = _process_state(pid)
    if state is None:
        return True
    return state[0] != "Z" and (not started or state[1] == started)


def runner_tags() -> dict[str, str]:
    state = _process_state(os.getpid())
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid()), PROCESS_TAG: state[1] if state else ""}


def free_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed the runner's runs on this host whose process is gone, and free the pool slots
    of every ended run, so that a killed run never blocks the warehouse pool."""
    if instance.is_ephemeral:
        return []
    notes = []
    alive_statuses = [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
                      dg.DagsterRunStatus.STARTED]
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=alive_statuses,
                                                       tags={HOST_TAG: socket.gethostname()})):
        pid = int(run.tags.get(PID_TAG) or 0)
        if pid and _process_alive(pid, run.tags.get(PROCESS_TAG, "")):
            continue
        instance.report_run_failed(run, message=f"the process {pid} running it is gone (killed): "
                                   "marked failed and its warehouse pool slots freed")
        notes.append(f"run {run.run_id} of a killed process marked failed")
    storage = instance.event_log_storage
    if storage.supports_global_concurrency_limits:
        for run_id in sorted(storage.get_concurrency_run_ids()):
            run = instance.get_run_by_id(run_id)
            if run is None or run.is_finished:
                storage.free_concurrency_slots_for_run(run_id)
                notes.append(f"pool slots of ended run {run_id} freed")
    return notes


@contextmanager
def run_instance(instance: dg.DagsterInstance | None) -> Iterator[dg.DagsterInstance]:
    """``instance`` as given, or (for a command) the one of DAGSTER_HOME when it is set, else an
    ephemeral one, disposed of at the end."""
    if instance is not None:
        yield instance
        return
    own = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()
    try:
        yield own
    finally:
        own.dispose()


def local_resources(warehouse_path: Path | None, resources: dict | None) -> tuple[Path, dict]:
    """The warehouse file a command's run writes and its resources: the warehouse resource
    follows the file (the run writes where the summary reads), ``resources`` override."""
    from resources import FoldersResource, WarehouseResource

    path = Path(warehouse_path or os.environ.get("SALESFLOW_WAREHOUSE") or DEFAULTS["SALESFLOW_WAREHOUSE"])
    return path, {
        "warehouse": WarehouseResource(database=str(path)),
        "folders": FoldersResource(home=os.environ.get("SALESFLOW_HOME") or DEFAULTS["SALESFLOW_HOME"]),
        **(resources or {}),
    }


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
    ``as_of`` is loaded as one run (the core's full listing is read once). The run's range also
    covers every range of an earlier run that was killed or failed and every day whose marts
    are missing (see ``plan_start``); runs on a persistent instance first free the pool slots of
    dead runs (``free_dead_runs``).
    """
    from pipelines.partitions import SHOP

    warehouse_path, resources = local_resources(warehouse_path, resources)
    as_of = as_of or core_yesterday(SHOP)
    first = date.fromisoformat(SHOP.partitions_start)
    if as_of < first:
        raise ValueError(f"as-of {as_of} is before the first partition {first} (SALESFLOW_PARTITIONS_START)")

    with run_instance(instance) as instance:
        notes = free_dead_runs(instance)
        start, why = plan_start(warehouse_path, first, as_of, since=since, full=full)
        run_id, failures = _run_range(instance, resources, warehouse_path, first, start, as_of,
                                      log_level=log_level, reports=reports)
    with connect(warehouse_path, read_only=True) as con:
        tables = table_counts(con)
    return RunSummary(not failures, run_id, start, as_of, warehouse_path, tables, failures, notes + why)


def _run_range(instance: dg.DagsterInstance, resources: dict, warehouse_path: Path, first: date,
               start: date, as_of: date, *, log_level: str, reports: bool) -> tuple[str, list[str]]:
    """The daily job over ``start..as_of`` as one run, then the periodic reports; the range is
    in the ledger before anything is written (a kill leaves it open) and closed on success."""
    from pipelines.definitions import defs
    from pipelines.partitions import days_run_args, monthly_partitions, weekly_partitions

    run_id = make_new_run_id()
    with connect(warehouse_path) as con:
        run_ledger.begin(con, run_id, start, as_of)
    common: dict = {
        "instance": instance,
        "raise_on_error": False,
        "resources": resources,
        "run_config": {"loggers": {"console": {"config": {"log_level": log_level}}}},
        "tags": runner_tags(),
    }
    partition = days_run_args(start, as_of, common["tags"])
    result = defs.resolve_job_def("daily_job").execute_in_process(run_id=run_id, **{**common, **partition})
    failures = _failures(result, "the run failed (see its events)")
    if result.success and reports:
        for job_name, partitions in (("weekly_report_job", weekly_partitions),
                                     ("monthly_report_job", monthly_partitions)):
            key = _latest_complete(partitions, as_of, first)
            if key is not None:
                report_run = defs.resolve_job_def(job_name).execute_in_process(partition_key=key, **common)
                failures += _failures(report_run, f"{job_name} failed")
    with connect(warehouse_path) as con:
        run_ledger.finish(con, run_id, not failures)
    return run_id, failures


def _failures(result, failed: str) -> list[str]:
    """The run's step failures, or ``failed`` alone when it failed without one."""
    steps = [
        f"{ev.step_key}: {ev.event_specific_data.error.message.strip().splitlines()[0]}"
        for ev in result.all_events
        if ev.is_step_failure and ev.event_specific_data and ev.event_specific_data.error
    ]
    return steps or ([] if result.success else [failed])


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


@dataclass
class TodaySummary:
    success: bool
    run_id: str
    warehouse: Path
    today: dict | None = None
    line: str = ""
    failures: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"run {self.run_id} (today so far): {'succeeded' if self.success else 'FAILED'}"]
        if self.line:
            lines.append(self.line)
        lines.append(f"warehouse: {self.warehouse.resolve()}")
        lines += [f"  failure: {f}" for f in self.failures]
        return "\n".join(lines)


def run_today(
    *,
    instance: dg.DagsterInstance | None = None,
    resources: dict | None = None,
    warehouse_path: Path | None = None,
    log_level: str = "INFO",
) -> TodaySummary:
    """Run ``intraday_job`` once in process: today's sales so far (the core's day) into raw.*,
    today's provisional marts and the ``marts.today`` row; the summary compares them with the
    same weekday last week up to the same time."""
    from pipelines.definitions import defs
    from pipelines.partitions import SHOP
    from salesflow.intraday import read_today, today_line

    warehouse_path, resources = local_resources(warehouse_path, resources)
    with run_instance(instance) as instance:
        free_dead_runs(instance)
        result = defs.resolve_job_def("intraday_job").execute_in_process(
            instance=instance, raise_on_error=False, resources=resources, tags=runner_tags(),
            run_config={"loggers": {"console": {"config": {"log_level": log_level}}}})
    failures = _failures(result, "the run failed (see its events)")
    today = None
    if warehouse_path.exists():
        with connect(warehouse_path, read_only=True) as con:
            today = read_today(con)
    line = today_line(today, SHOP.currency) if today and result.success else ""
    return TodaySummary(result.success, result.run_id, warehouse_path, today, line, failures)
