"""The import job: one run per inbox file (started by ``sensors.inbox.inbox_sensor`` or by
``salesflow import PATH``).

Imports are not derived data, so this is an op job with run config rather than assets. Its
single op runs in the warehouse pool (it records every file in ``ops.imports`` and writes the
warehouse kinds) and does the work in ``salesflow.imports.pipeline.process_file``.

A committed warehouse kind is reported as materializations of the raw assets it wrote
(``raw/sales`` and ``raw/sale_items`` for each day a sales_history file wrote, ``raw/expenses``,
``raw/customers``, ``raw/lead_times``); the automation conditions rebuild what follows them
(``FOLLOW_UP``). ``salesflow import`` runs the same follow-up in process before it returns.
"""

import os
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from assets.extract import RAW_SALE_ITEMS, RAW_SALES
from assets.imported import RAW_CUSTOMERS, RAW_EXPENSES, RAW_LEAD_TIMES
from assets.intraday import INTRADAY_GROUP
from assets.marts import as_of_marts, daily_marts, mart_exports, snapshot_marts
from assets.reorder import reorder_suggestions
from pipelines.partitions import SHOP, daily_partitions, days_run_args
from resources import WAREHOUSE_POOL, CoreApiResource, FoldersResource, MailerResource, WarehouseResource
from salesflow.errors import CoreAuthError, CoreDataError, MailConfigError
from salesflow.imports.pipeline import (
    MODES, ImportOutcome, ImportSettings, InboxLayout, copy_into_inbox, day_runs, days_text,
    process_file, safe_name, span_text,
)
from salesflow.notices import import_recipients, notify_import

IMPORT_OP = "import_file"
SHA_TAG = "salesflow/import_sha256"
STAGE_TAG = "salesflow/import_stage"
FILE_TAG = "salesflow/import_file"
MODE_ENV = "SALESFLOW_IMPORT_MODE"

# A core or warehouse that kept failing is retried (the import resumes from its journal);
# refused credentials and contract breaches are not.
IMPORT_RETRY = dg.RetryPolicy(max_retries=2, delay=10, backoff=dg.Backoff.EXPONENTIAL,
                              jitter=dg.Jitter.PLUS_MINUS)


class ImportFileConfig(dg.Config):
    path: str = Field(description="The file, relative to SALESFLOW_HOME/inbox: 'sales_june.xlsx', "
                      "'approved/sales_june.xlsx' or '.cli/<name>' (salesflow import)")
    mode: str = Field(default="auto", description="auto: commit a file without problems; review: "
                      "write a preview and wait in inbox/pending/ until the file is moved to "
                      "inbox/approved/")
    sha256: str | None = Field(default=None, description="The content hash the sensor saw; a "
                               "file changed since is left for the sensor to request again")
    batch_rows: int = Field(default=50, description="Products / stock counts per journaled batch")
    batch_sales: int = Field(default=100, description="Sales per POST /sales/bulk")


# -- what follows an import ------------------------------------------------------------------
# The raw assets each warehouse kind writes (the core's kinds reach the warehouse through the
# next extract instead).
IMPORTED_RAW: dict[str, tuple[dg.AssetKey, ...]] = {
    "sales_history": (RAW_SALES, RAW_SALE_ITEMS),
    "expenses": (RAW_EXPENSES,),
    "customers": (RAW_CUSTOMERS,),
    "lead_times": (RAW_LEAD_TIMES,),
}
DAY_MARTS = dg.AssetSelection.assets(daily_marts, as_of_marts)
SNAPSHOT_MARTS = dg.AssetSelection.assets(snapshot_marts)
EXPORTS = dg.AssetSelection.assets(mart_exports)
REORDER = dg.AssetSelection.assets(reorder_suggestions)
TODAY = dg.AssetSelection.groups(INTRADAY_GROUP)


@dataclass(frozen=True)
class FollowUp:
    """The assets a committed import of one kind flows into, as the automation conditions
    rebuild them: ``days`` for each day the import wrote, ``latest`` for the latest day, and
    ``whole`` (unpartitioned) once. `salesflow import` runs exactly these after the commit."""

    days: dg.AssetSelection | None = None
    latest: dg.AssetSelection | None = None
    whole: dg.AssetSelection | None = None
    labels: tuple[str, ...] = ()  # what a person is told was rebuilt besides the days


FOLLOW_UP: dict[str, FollowUp] = {
    # the days' marts and KPIs as of them; customers, monthly expenses and profit; the exports
    "sales_history": FollowUp(days=DAY_MARTS, whole=SNAPSHOT_MARTS | EXPORTS,
                              labels=("monthly profit", "customer segments and cohorts")),
    "expenses": FollowUp(whole=SNAPSHOT_MARTS | EXPORTS, labels=("monthly profit",)),
    # lead times change the latest day's reorder list only
    "lead_times": FollowUp(latest=REORDER, labels=("reorder list",)),
    # no mart reads raw.customers
    "customers": FollowUp(),
    # sales go to the core, which stamps them now: today's figures so far (core_sales_sensor
    # requests the same refresh when it sees them)
    "sales": FollowUp(whole=TODAY, labels=("today's figures",)),
}


@dataclass
class FollowUpPlan:
    kind: str
    spans: list[tuple[date, date]] = field(default_factory=list)  # days with marts, as spans
    outside: list[date] = field(default_factory=list)  # days written that have no partition
    follow: FollowUp = field(default_factory=FollowUp)


def follow_up_plan(kind: str | None, days) -> FollowUpPlan:
    """What follows a committed import of ``kind`` that wrote the sale days ``days``."""
    follow = FOLLOW_UP.get(kind or "", FollowUp())
    inside = [d for d in days if daily_partitions.has_partition_key(d.isoformat())]
    outside = sorted(set(days) - set(inside))
    return FollowUpPlan(kind or "", day_runs(inside), outside, follow)


def _materializations(outcome: ImportOutcome, plan: FollowUpPlan) -> list[dg.AssetMaterialization]:
    """The raw assets (and days) a committed import wrote, as materializations: the automation
    sensor rebuilds what follows them."""
    keys = IMPORTED_RAW.get(outcome.kind or "", ())
    meta = {"import_file": outcome.file, "import_sha256": outcome.sha256 or "",
            "rows_committed": outcome.commit.rows_committed if outcome.commit else 0}
    if outcome.kind != "sales_history":
        return [dg.AssetMaterialization(asset_key=key, metadata=meta) for key in keys]
    days = [d for a, b in plan.spans for d in daily_partitions.get_partition_keys_in_range(
        dg.PartitionKeyRange(a.isoformat(), b.isoformat()))]
    return [dg.AssetMaterialization(asset_key=key, partition=day, metadata=meta)
            for key in keys for day in days]


_MD_SPECIAL = re.compile(r"([\\`*_\[\]()!<>#|{}~])")


def _md(text: str, limit: int) -> str:
    """Cell text inside a markdown table: one line, markdown characters escaped (a value from a
    file must not turn into a link or an image in the UI)."""
    text = " ".join(str(text).split())[:limit]
    return _MD_SPECIAL.sub(r"\\\1", text)


def outcome_metadata(outcome: ImportOutcome, n: int = 20) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "status": outcome.status,
        "file": outcome.file,
        "kind": outcome.kind or "",
        "message": outcome.message[:2000],
    }
    if outcome.sha256:
        meta["sha256"] = outcome.sha256
    if outcome.rows_total is not None:
        meta.update(rows_total=outcome.rows_total, rows_valid=outcome.rows_valid,
                    rows_rejected=outcome.rows_rejected)
    if outcome.issues:
        lines = ["| where | reason | value |", "| --- | --- | --- |"]
        for issue in outcome.issues[:n]:
            lines.append(f"| {_md(issue.where(), 80)} | {_md(issue.reason, 300)} | "
                         f"{_md(issue.value or '', 60)} |")
        if len(outcome.issues) > n:
            lines.append(f"| ... | {len(outcome.issues) - n} more in the errors workbook | |")
        meta["first_errors"] = dg.MetadataValue.md("\n".join(lines))
        meta["errors"] = len(outcome.issues)
    if outcome.notes:
        meta["notes"] = dg.MetadataValue.json(outcome.notes)
    if outcome.commit is not None:
        meta.update(outcome.commit.as_metadata())
        if outcome.commit.warnings:
            meta["warnings"] = dg.MetadataValue.json(outcome.commit.warnings[:50])
    if outcome.account is not None:
        meta["account"] = dg.MetadataValue.json(outcome.account)
    if outcome.moved_to is not None:
        meta["moved_to"] = dg.MetadataValue.path(str(outcome.moved_to))
    if outcome.report is not None:
        meta["report"] = dg.MetadataValue.path(str(outcome.report))
    if outcome.days:
        meta["days_written"] = dg.MetadataValue.json(_spans_json(day_runs(outcome.days)))
        meta["days_rebuilt"] = dg.MetadataValue.json(_spans_json(outcome.rebuilt_days))
    if outcome.days_outside:
        meta["days_outside_partitions"] = dg.MetadataValue.json(
            [d.isoformat() for d in outcome.days_outside])
    return meta


def _spans_json(spans) -> list[str]:
    return [span_text(a, b) for a, b in spans]


def outcome_summary(outcome: ImportOutcome) -> dict[str, Any]:
    return {
        "status": outcome.status, "file": outcome.file, "sha256": outcome.sha256,
        "kind": outcome.kind, "rows_total": outcome.rows_total,
        "rows_valid": outcome.rows_valid, "rows_rejected": outcome.rows_rejected,
        "message": outcome.message, "first_errors": outcome.first_errors(20),
        "errors": len(outcome.issues),
        "moved_to": str(outcome.moved_to) if outcome.moved_to else None,
        "report": str(outcome.report) if outcome.report else None,
        "commit": outcome.commit.as_metadata() if outcome.commit else None,
        "warnings": list(outcome.commit.warnings) if outcome.commit else [],
        "account": outcome.account,
        "days": [d.isoformat() for d in outcome.days],
        "days_outside": [d.isoformat() for d in outcome.days_outside],
        "text": outcome.summary(),
    }


def _report_changes(context, outcome: ImportOutcome) -> None:
    """Log the raw assets and days the commit wrote, and note on the outcome what follows."""
    plan = follow_up_plan(outcome.kind, outcome.days)
    outcome.rebuilt_days = list(plan.spans) if plan.follow.days is not None else []
    outcome.days_outside = list(plan.outside)
    outcome.rebuilt_marts = list(plan.follow.labels)
    for event in _materializations(outcome, plan):
        context.log_event(event)
    if plan.outside:
        context.log.warning(
            f"{len(plan.outside)} day(s) written by {outcome.file} have no daily partition "
            f"(partitions run {daily_partitions.start:%Y-%m-%d} to yesterday), so no day's marts "
            f"follow them: {days_text(plan.outside)}")


def _notify(context, outcome: ImportOutcome, warehouse: WarehouseResource,
            folders: FoldersResource, mailer: MailerResource) -> str:
    """Tell the import recipients how the import ended (once per import). A mail failure
    leaves the notice queued for the next import run; the import itself is done."""
    try:
        try:
            transport = mailer.mailer(folders.path("exports", "outbox"))
        except MailConfigError as exc:  # queued all the same; sent once the settings are fixed
            context.log.warning(f"mail settings: {exc}")
            transport = None
        with warehouse.get_connection() as con:
            result = notify_import(con, transport, outcome, import_recipients(mailer.recipients()),
                                   shop_name=SHOP.shop_name)
    except Exception as exc:  # noqa: BLE001 - the import is done; its notice must not undo it
        context.log.warning(f"import notice of {outcome.file} not sent: {type(exc).__name__}: {exc}")
        return f"not sent: {type(exc).__name__}"
    (context.log.warning if result.error else context.log.info)(result.describe())
    return result.describe()


@dg.op(
    name=IMPORT_OP,
    pool=WAREHOUSE_POOL,
    retry_policy=IMPORT_RETRY,
    out=dg.Out(dict, description="The outcome: status, counts, first errors, where the file went"),
    description="Validate one inbox file and commit it, reject it with an annotated copy, or "
    "hold it for review; record it in ops.imports.",
)
def import_file(
    context: dg.OpExecutionContext,
    config: ImportFileConfig,
    core: CoreApiResource,
    warehouse: WarehouseResource,
    folders: FoldersResource,
    mailer: MailerResource,
) -> dg.Output:
    if config.mode not in MODES:
        raise dg.Failure(f"mode must be one of {MODES}, got {config.mode!r}", allow_retries=False)
    layout = InboxLayout(Path(folders.home))
    settings = ImportSettings(mode=config.mode, batch_rows=config.batch_rows,
                              batch_sales=config.batch_sales, timezone=core.timezone)
    try:
        outcome = process_file(
            config.path, layout=layout, connect=warehouse.get_connection,
            client_factory=lambda: core.get_client(context.log), settings=settings,
            expected_sha256=config.sha256, log=context.log,
        )
    except (CoreAuthError, CoreDataError) as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    if outcome.status == "committed":
        _report_changes(context, outcome)
    metadata = outcome_metadata(outcome)
    context.log.info(f"import of {outcome.file}: {outcome.status}; {outcome.message[:500]}")
    metadata["notice"] = _notify(context, outcome, warehouse, folders, mailer)
    if outcome.status == "failed":
        raise dg.Failure(description=outcome.message, metadata=metadata, allow_retries=False)
    return dg.Output(outcome_summary(outcome), metadata=metadata)


@dg.job(
    name="import_job",
    description="Import one file dropped into the inbox (run config: ops.import_file.config.path).",
    tags={"salesflow/kind": "import"},
)
def import_job():
    import_file()


def import_run_config(path: str, *, mode: str = "auto", sha256: str | None = None) -> dict:
    config: dict[str, Any] = {"path": path, "mode": mode}
    if sha256:
        config["sha256"] = sha256
    return {"ops": {IMPORT_OP: {"config": config}}}


def env_resources() -> dict:
    """The job's resources from the environment (as pipelines/definitions.py configures them)."""
    return {
        "core": CoreApiResource(
            base_url=dg.EnvVar("SALESFLOW_CORE_URL"), phone=dg.EnvVar("SALESFLOW_CORE_PHONE"),
            password=dg.EnvVar("SALESFLOW_CORE_PASSWORD"),
            timezone=os.environ.get("SALESFLOW_TIMEZONE") or "UTC",
        ),
        "warehouse": WarehouseResource(
            database=os.environ.get("SALESFLOW_WAREHOUSE") or "data/warehouse.duckdb"),
        "folders": FoldersResource(home=os.environ.get("SALESFLOW_HOME") or "."),
        "mailer": MailerResource(**{
            field: os.environ.get(name) or default for field, name, default in (
                ("host", "SALESFLOW_SMTP_HOST", ""), ("port", "SALESFLOW_SMTP_PORT", ""),
                ("security", "SALESFLOW_SMTP_SECURITY", "starttls"),
                ("user", "SALESFLOW_SMTP_USER", ""), ("password", "SALESFLOW_SMTP_PASSWORD", ""),
                ("sender", "SALESFLOW_SMTP_SENDER", ""),
                ("unsubscribe", "SALESFLOW_MAIL_UNSUBSCRIBE", ""),
                ("ops_recipients", "SALESFLOW_OPS_RECIPIENTS", ""))}),
    }


def run_import_file(
    source: Path,
    *,
    mode: str = "auto",
    resources: dict | None = None,
    instance: dg.DagsterInstance | None = None,
) -> tuple[bool, dict]:
    """``salesflow import PATH``: run ``import_job`` in process on one file.

    A file outside the inbox is copied to ``inbox/.cli/`` first (the original stays where it
    is). Returns ``(success, outcome summary)``; on failure the summary holds the error.
    """
    resources = resources or env_resources()
    layout = InboxLayout(Path(resources["folders"].home))
    relpath = copy_into_inbox(layout, Path(source))
    from pipelines.runner import run_instance

    with run_instance(instance) as instance:
        result = import_job.execute_in_process(
            run_config=import_run_config(relpath, mode=mode), resources=resources,
            instance=instance, raise_on_error=False,
            tags={FILE_TAG: safe_name(Path(source).name)[:200], STAGE_TAG: "cli"},
        )
        if result.success:
            summary = result.output_for_node(IMPORT_OP)
            if summary.get("status") == "committed":
                summary = rebuild_after_import(summary, resources=resources, instance=instance)
            return True, summary
        text = "\n".join(_step_errors(result)) or "the import run failed"
        return False, {"status": "failed", "file": Path(source).name, "message": text, "text": text}


def _step_errors(result) -> list[str]:
    errors = []
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            data = event.event_specific_data
            err = getattr(data, "error", None)
            while getattr(err, "cause", None) is not None:  # the step's own error, not the wrapper
                err = err.cause
            errors.append((getattr(err, "message", None) or event.message or "step failed").strip())
    return errors


def _span_text(span: tuple[date, date] | None) -> str:
    return "" if span is None else f" for {span_text(*span)}"


def rebuild_after_import(summary: dict, *, resources: dict, instance: dg.DagsterInstance) -> dict:
    """After a committed import: run what follows it (``FOLLOW_UP``) in this process, each span
    of days as one partition-range run, then the unpartitioned marts and exports once. The
    summary gains ``rebuilt`` (one entry per run) and its text says what was rebuilt."""
    from pipelines.definitions import defs  # the code location imports this module

    plan = follow_up_plan(summary.get("kind"), [date.fromisoformat(d) for d in summary.get("days") or []])
    follow = plan.follow
    runs: list[tuple[dg.AssetSelection, tuple[date, date] | None]] = []
    if follow.days is not None:
        runs += [(follow.days, span) for span in plan.spans]
    if follow.latest is not None:
        latest = daily_partitions.get_last_partition_key()
        if latest is not None:
            day = date.fromisoformat(latest)
            runs.append((follow.latest, (day, day)))
    if follow.whole is not None:
        runs.append((follow.whole, None))
    graph = defs.resolve_asset_graph()
    rebuilt, lines = [], []
    for selection, span in runs:
        keys = sorted(k.to_user_string() for k in selection.resolve(graph))
        tags = {FILE_TAG: safe_name(str(summary.get("file") or ""))[:200], STAGE_TAG: "rebuild"}
        kwargs = days_run_args(*span, tags) if span is not None else {"tags": tags}
        result = dg.materialize(list(defs.assets), selection=selection, resources=resources,
                                instance=instance, raise_on_error=False, **kwargs)
        errors = [] if result.success else (_step_errors(result) or ["the run failed"])
        rebuilt.append({"assets": keys, "first": span[0].isoformat() if span else None,
                        "last": span[1].isoformat() if span else None, "run_id": result.run_id,
                        "success": result.success, "errors": errors})
        what = ", ".join(keys)
        if result.success:
            lines.append(f"  rebuilt{_span_text(span)}: {what}")
        else:
            first_line = (errors[0].splitlines() or ["the run failed"])[0]
            lines.append(f"  NOT rebuilt{_span_text(span)}: {what} ({first_line}); "
                         "`salesflow materialize` builds them again")
    if plan.outside:
        lines.append(f"  no daily partition for {days_text(plan.outside)}: their days' marts are not built")
    summary = {**summary, "rebuilt": rebuilt}
    if lines:
        summary["text"] = "\n".join([summary.get("text") or "", *lines]).strip("\n")
    return summary


import_jobs = [import_job]
