"""The inbox sensor: one ``import_job`` run per complete file dropped into ``inbox/``.

It lists ``inbox/`` and ``inbox/approved/`` only (never the warehouse), keeps its memory in
the cursor (Dagster stores it, so it survives restarts), waits until a file has stopped
changing, and requests a run keyed by the file's sha256. The rules are in
``salesflow.imports.scan``. The import mode (``auto`` or ``review``) comes from
``SALESFLOW_IMPORT_MODE`` at each evaluation (default ``auto``).
"""

import os
import time
from pathlib import Path

import dagster as dg

from pipelines.imports_job import (
    FILE_TAG, MODE_ENV, SHA_TAG, STAGE_TAG, import_job, import_run_config,
)
from resources import FoldersResource
from salesflow.imports.pipeline import MODES, InboxLayout, safe_name
from salesflow.imports.scan import ScanSettings, scan_inbox


def _prior_runs(context: dg.SensorEvaluationContext):
    try:
        instance = context.instance
    except Exception:  # noqa: BLE001 - a context built without an instance
        return None

    def count(sha: str, stage: str) -> int:
        return instance.get_runs_count(dg.RunsFilter(tags={SHA_TAG: sha, STAGE_TAG: stage}))
    return count


def build_inbox_sensor(
    *,
    name: str = "inbox_sensor",
    minimum_interval_seconds: int = 30,
    settings: ScanSettings = ScanSettings(),
    mode: str | None = None,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
) -> dg.SensorDefinition:
    """An inbox sensor; ``mode`` fixes the import mode instead of reading SALESFLOW_IMPORT_MODE."""

    @dg.sensor(
        name=name,
        job=import_job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description="Requests one import_job run per complete file in SALESFLOW_HOME/inbox "
        "(and inbox/approved), keyed by the file's sha256.",
    )
    def _inbox_sensor(context: dg.SensorEvaluationContext, folders: FoldersResource):
        layout = InboxLayout(Path(folders.home))
        try:
            layout.ensure()
        except OSError as exc:
            return dg.SkipReason(f"the inbox folders are not available: {exc}")
        current_mode = mode or os.environ.get(MODE_ENV) or "auto"
        if current_mode not in MODES:
            return dg.SkipReason(f"{MODE_ENV} must be one of {MODES}, not {current_mode!r}")
        result = scan_inbox(layout, context.cursor, now=time.time(), settings=settings,
                            prior_runs=_prior_runs(context))
        requests = [
            dg.RunRequest(
                run_key=r.run_key,
                run_config=import_run_config(r.relpath, mode=current_mode, sha256=r.sha256),
                tags={SHA_TAG: r.sha256, STAGE_TAG: r.stage, FILE_TAG: safe_name(r.relpath)[:200]},
            )
            for r in result.requests
        ]
        for note in result.notes[:20]:
            context.log.info(note)
        return dg.SensorResult(
            run_requests=requests,
            cursor=result.cursor,
            skip_reason=None if requests else result.describe(),
        )

    return _inbox_sensor


inbox_sensor = build_inbox_sensor()

inbox_sensors = [inbox_sensor]
