"""E-mail ops when a run fails (``SALESFLOW_OPS_RECIPIENTS``; outbox files without SMTP)."""


import os

import dagster as dg

from pipelines.partitions import SHOP
from resources import FoldersResource, MailerResource
from salesflow.notices import run_failure_message


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
    error = context.failure_event.message or ""
    msg = run_failure_message(
        run.job_name, run.run_id, error, os.environ.get("SALESFLOW_UI_URL") or None,
        sender=mailer.settings().sender, recipients=recipients, shop_name=SHOP.shop_name,
        secrets=[s for s in (mailer.password,) if s],
    )
    delivery = mailer.mailer(folders.path("exports", "outbox")).deliver(msg)
    context.log.info(f"run failure of {run.run_id} sent by {delivery.transport} to {len(recipients)} recipient(s)")
