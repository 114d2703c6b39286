"""E-mail ops when a run fails (``SALESFLOW_OPS_RECIPIENTS``; outbox files without SMTP)."""


import os

import dagster as dg

from pipelines.partitions import SHOP
from resources import FoldersResource, MailerResource
from salesflow.notices import run_failure_message


def _step_errors(instance: dg.DagsterInstance, run_id: str, limit: int = 5) -> str:
    """What each failed step raised (the innermost cause, as the op raised it): the run's own
    failure message only names the steps."""
    try:
        records = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    except Exception:  # noqa: BLE001 - the e-mail still goes out with the run's message
        return ""
    lines = []
    for record in records[:limit]:
        event = record.dagster_event
        error = getattr(event.event_specific_data, "error", None) if event else None
        while error is not None and error.cause is not None:
            error = error.cause
        if error is not None:
            lines.append(f"{event.step_key}: {error.message.strip()}")
    return "\n".join(lines)


@dg.run_failure_sensor(
    name="run_failure_email",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Sends ops one e-mail per failed run, with the error and a link to the run.",
)
def run_failure_email(context: dg.RunFailureSensorContext, mailer: MailerResource, folders: FoldersResource):
    recipients = mailer.recipients().ops
    if not recipients:
        return dg.SkipReason("SALESFLOW_OPS_RECIPIENTS is empty: nobody to tell")
    run = context.dagster_run
    error = "\n\n".join(x for x in (context.failure_event.message or "",
                                     _step_errors(context.instance, run.run_id)) if x)
    msg = run_failure_message(
        run.job_name, run.run_id, error, os.environ.get("SALESFLOW_UI_URL") or None,
        sender=mailer.settings().sender, recipients=recipients, shop_name=SHOP.shop_name,
        secrets=[s for s in (mailer.password,) if s],
    )
    delivery = mailer.mailer(folders.path("exports", "outbox")).deliver(msg)
    context.log.info(f"run failure of {run.run_id} sent by {delivery.transport} to {len(recipients)} recipient(s)")
