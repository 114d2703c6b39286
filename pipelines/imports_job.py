"""The import job: one run per inbox file (started by ``sensors.inbox.inbox_sensor`` or by
``salesflow import PATH``).

Imports are not derived data, so this is an op job with run config rather than assets. Its
single op runs in the warehouse pool (it records every file in ``ops.imports`` and writes the
warehouse kinds) and does the work in ``salesflow.imports.pipeline.process_file``.
"""

import os
import re
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from pipelines.partitions import SHOP
from resources import WAREHOUSE_POOL, CoreApiResource, FoldersResource, MailerResource, WarehouseResource
from salesflow.errors import CoreAuthError, CoreDataError, MailConfigError
from salesflow.imports.pipeline import (
    MODES, ImportOutcome, ImportSettings, InboxLayout, copy_into_inbox, process_file, safe_name,
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
    return meta


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
        "text": outcome.summary(),
    }


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
    own = instance is None
    if own:
        instance = (dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME")
                    else dg.DagsterInstance.ephemeral())
    try:
        result = import_job.execute_in_process(
            run_config=import_run_config(relpath, mode=mode), resources=resources,
            instance=instance, raise_on_error=False,
            tags={FILE_TAG: safe_name(Path(source).name)[:200], STAGE_TAG: "cli"},
        )
        if result.success:
            return True, result.output_for_node(IMPORT_OP)
        errors = []
        for event in result.all_events:
            if event.event_type_value == "STEP_FAILURE":
                data = event.event_specific_data
                err = getattr(data, "error", None)
                errors.append(getattr(err, "message", None) or event.message or "step failed")
        text = "\n".join(e.strip() for e in errors) or "the import run failed"
        return False, {"status": "failed", "file": Path(source).name, "message": text, "text": text}
    finally:
        if own:
            instance.dispose()


import_jobs = [import_job]
