"""Notices to ops: import results and failed runs."""

from __future__ import annotations

import html
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Iterable, Sequence

from salesflow.mailer import build_message, redact


def _sender_domain(sender: str) -> str:
    addr = parseaddr(sender)[1]
    return addr.rsplit("@", 1)[1] if "@" in addr else "salesflow.local"


def run_failure_message(job_name: str, run_id: str, error_summary: str, ui_url: str | None, *,
                        sender: str, recipients: Sequence[str], shop_name: str | None = None,
                        secrets: Iterable[str] = ()) -> EmailMessage:
    """The e-mail to ops about a failed run. Credentials in the error text are masked; the
    Message-ID derives from the run id, so a repeated notification is recognisably the same."""
    summary = redact(error_summary or "(no error message)", secrets)
    if len(summary) > 4000:
        summary = summary[:4000] + "\n... (truncated; the full error is in the run's logs)"
    where = f" for {shop_name}" if shop_name else ""
    subject = f"[SalesFlow] Run failed: {job_name} ({run_id[:8]})"
    link = f"{ui_url.rstrip('/')}/runs/{run_id}" if ui_url else None
    text = (f"The run {run_id} of job {job_name}{where} failed.\n\n"
            f"Error:\n{summary}\n\n"
            + (f"Open the run: {link}\n" if link else "")
            + "Rerun it from the UI once the cause is fixed; reruns are safe.\n")
    body = (f"<html><body style=\"font-family:Arial,sans-serif\">"
            f"<p>The run <code>{html.escape(run_id)}</code> of job <b>{html.escape(job_name)}</b>"
            f"{html.escape(where)} failed.</p>"
            f"<pre style=\"background:#f6f6f6;padding:8px;white-space:pre-wrap\">{html.escape(summary)}</pre>"
            + (f"<p><a href=\"{html.escape(link, quote=True)}\">Open the run</a></p>" if link else "")
            + "</body></html>")
    safe_id = "".join(ch for ch in run_id if ch.isalnum() or ch in "-_.") or "run"
    return build_message(sender=sender, to=recipients, subject=subject, text=text, html=body,
                         message_id=f"<run-failure.{safe_id}@{_sender_domain(sender)}>",
                         headers={"X-SalesFlow-Run-Id": safe_id})
