"""Notices to ops: the result of each inbox import, and failed runs.

Import results
--------------
When an inbox import ends as ``committed``, ``duplicate`` or ``rejected``, one message goes to
the import recipients (``SALESFLOW_IMPORT_RECIPIENTS``, else the ops list): the file, its kind,
the outcome, the rows committed and, for a rejection, the first problems (row, column, reason)
with the full list attached (the rejection's errors workbook). Imports that end otherwise
need no notice: ``awaiting_approval`` is the reviewer's own step, ``failed`` fails the run and
the run-failure e-mail says so, ``missing``/``changed`` mean nothing happened.

Each import is told once. Its ledger key is ``import:<status>:<name in processed/ or
rejected/>``: that name carries the import's UTC stamp and the file's sha256 prefix and is
unique on disk, so a second drop of the same content is a second import (and a second
notice), while a rerun of the same run finds the file gone and has nothing to tell.

The ledger is the one the alerts and reports use: ``ops.alert_deliveries`` holds the built
message, ``ops.alerts_sent`` the key once delivered. A notice is first stored ``queued`` (the
complete message, attachments included, so it no longer depends on the files), then
``sending`` while the server has it, then ``sent``. When the server cannot be reached the
notice goes back to ``queued`` with the error, the import itself stays committed, and the
next import run sends it before its own (the same bytes and Message-ID; one queued while the
mail settings were wrong goes out from the configured sender). A message left
``sending`` by a process that died is sent again the same way, by the next import run or the
next alert run, so a notice is never lost; a mail program shows the repeat once by its
Message-ID.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import duckdb

from salesflow.alerts import _finish as finish_delivery, ensure_alert_tables, utcnow
from salesflow.email_render import render
from salesflow.errors import MailConfigError, MailDeliveryError
from salesflow.fmt import span_label
from salesflow.imports.kinds import KINDS
from salesflow.imports.reading import column_letter
from salesflow.mailer import (Attachment, Mailer, Recipients, bare_address, build_message,
                              parse_addresses, redact, sender_domain, stored_message)
from salesflow.warehouse import transaction

IMPORT_RECIPIENTS_ENV = "SALESFLOW_IMPORT_RECIPIENTS"
NOTIFIED_STATUSES = ("committed", "duplicate", "rejected")
FIRST_ERRORS = 10
# the attached error list is skipped above this size; the message says where the file is
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
ERROR_CHARS = 4000
# the From of a notice queued without mail settings; replaced by the sender when it goes out
UNSET_SENDER = "SalesFlow <salesflow@localhost>"
STATUS_WORDS = {"committed": "committed", "duplicate": "skipped (duplicate)",
                "rejected": "rejected"}



def _safe_token(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in text)[:120] or "x"


# -- import results --------------------------------------------------------------------------
def import_recipients(recipients: Recipients, environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Who is told about imports: ``SALESFLOW_IMPORT_RECIPIENTS`` when set (``none`` for
    nobody), else the ops recipients."""
    env = os.environ if environ is None else environ
    value = env.get(IMPORT_RECIPIENTS_ENV)
    if value is None or not value.strip():
        return tuple(recipients.ops)
    return parse_addresses(value, source=IMPORT_RECIPIENTS_ENV)


def import_notice_key(outcome) -> str | None:
    """The ledger key of an import's notice; None when the outcome needs none."""
    if outcome.status not in NOTIFIED_STATUSES or outcome.moved_to is None:
        return None
    return f"import:{outcome.status}:{Path(outcome.moved_to).name}"


def _kind_label(name: str | None) -> str:
    kind = KINDS.get(name or "")
    return f"{kind.title} ({name})" if kind is not None else (name or "not recognised")


def _rows_committed(outcome) -> int:
    if outcome.status != "committed":
        return 0
    if outcome.commit is not None:
        return int(outcome.commit.rows_committed)
    return int(outcome.rows_valid or 0)


def _issue_rows(outcome, n: int) -> list[dict[str, Any]]:
    out = []
    for issue in outcome.issues[:n]:
        letter = column_letter(issue.col_index) if issue.col_index is not None else ""
        name = issue.column or ""
        out.append({
            "row": "file" if issue.row is None else str(issue.row),
            "column": f"{letter} ({name})" if letter and name else (letter or name),
            "reason": issue.reason,
            "value": "" if issue.value is None else str(issue.value)[:80],
        })
    return out


def rebuilt_facts(outcome) -> list[tuple[str, str]]:
    """What a committed import sets rebuilding in the warehouse, as facts of its notice (sent at
    the commit; `salesflow import` and the automation sensor rebuild right after): "Days being
    rebuilt: 3 - 5 March 2025", "Also being rebuilt: Monthly profit", and days written that have
    no marts."""
    if outcome.status != "committed":
        return []
    days = list(getattr(outcome, "rebuilt_days", None) or [])
    marts = list(getattr(outcome, "rebuilt_marts", None) or [])
    outside = list(getattr(outcome, "days_outside", None) or [])
    facts = []
    if days:
        facts.append(("Days being rebuilt", "; ".join(span_label(a, b) for a, b in days)))
    if marts:
        text = ", ".join(marts)
        facts.append(("Also being rebuilt" if days else "Being rebuilt", text[:1].upper() + text[1:]))
    if outside:
        shown = ", ".join(f"{d.day} {d:%B %Y}" for d in outside[:5])
        more = f" and {len(outside) - 5} more" if len(outside) > 5 else ""
        facts.append(("Days without marts", f"{shown}{more} (outside the days the marts cover)"))
    return facts


def import_context(outcome, *, shop_name: str, attached: str | None) -> dict[str, Any]:
    """What the import-result templates show, from the import's outcome."""
    status = outcome.status
    committed = _rows_committed(outcome)
    facts = [("File", outcome.file), ("Kind", _kind_label(outcome.kind)),
             ("Outcome", STATUS_WORDS.get(status, status))]
    if outcome.rows_total is not None:
        facts.append(("Rows in the file", f"{outcome.rows_total:,}"))
    facts.append(("Rows committed", f"{committed:,}"))
    if outcome.rows_rejected:
        facts.append(("Rows with problems", f"{outcome.rows_rejected:,}"))
    facts += rebuilt_facts(outcome)
    actions = []
    warnings: list[str] = []
    if outcome.commit is not None:
        actions = [(k.replace("_", " "), f"{v:,}") for k, v in sorted(outcome.commit.actions.items())]
        warnings = list(outcome.commit.warnings[:5])
    errors = _issue_rows(outcome, FIRST_ERRORS)
    more = max(0, len(outcome.issues) - len(errors))
    if status == "committed":
        headline = f"{committed:,} row{'s' if committed != 1 else ''} of {outcome.file} committed"
        next_step = None
    elif status == "duplicate":
        headline = f"{outcome.file} was already imported: nothing was imported again"
        next_step = "Nothing to do, unless the file was meant to differ from the one committed."
    else:
        headline = f"{outcome.file} was rejected: nothing was committed"
        next_step = ("Fix the rows listed (the attached workbook marks each bad cell in red, "
                     "with the reason in a comment) and drop the corrected file into the inbox "
                     "again." if attached and attached.endswith(".xlsx") else
                     "Fix the file and drop it into the inbox again; the templates folder "
                     "has an empty template for each kind.")
    return {
        "title": f"Import {STATUS_WORDS.get(status, status)}: {outcome.file}",
        "preheader": headline,
        "subtitle": shop_name,
        "shop_name": shop_name,
        "status": status,
        "headline": headline,
        "message": outcome.message,
        "facts": facts,
        "actions": actions,
        "warnings": warnings,
        "errors": errors,
        "more_errors": more,
        "error_total": len(outcome.issues),
        "attached": attached,
        "kept_at": Path(outcome.moved_to).name if outcome.moved_to else None,
        "next_step": next_step,
        "notes": list(outcome.notes[:5]),
    }


def import_result_message(outcome, *, sender: str, recipients: Sequence[str], shop_name: str,
                          message_id: str | None = None,
                          unsubscribe: str | None = None) -> EmailMessage:
    """The e-mail about one finished import, with the rejection's error list attached."""
    attachments = []
    report = Path(outcome.report) if outcome.report else None
    if (outcome.status == "rejected" and report is not None and report.is_file()
            and report.stat().st_size <= MAX_ATTACHMENT_BYTES):
        attachments.append(Attachment.from_path(report))
    attached = attachments[0].filename if attachments else None
    context = import_context(outcome, shop_name=shop_name, attached=attached)
    body = render("import_result", **context, unsubscribe=unsubscribe)
    subject = f"[SalesFlow] {shop_name}: import {STATUS_WORDS.get(outcome.status, outcome.status)}: {outcome.file}"
    if outcome.status == "committed":
        rows = _rows_committed(outcome)
        subject += f" ({rows:,} row{'s' if rows != 1 else ''})"
    elif outcome.status == "rejected" and outcome.issues:
        subject += f" ({len(outcome.issues):,} problem{'s' if len(outcome.issues) != 1 else ''})"
    return build_message(sender=sender, to=recipients, subject=subject, text=body.text,
                         html=body.html, attachments=attachments, message_id=message_id,
                         headers={"X-SalesFlow-Import": _safe_token(outcome.sha256 or "none")})


@dataclass
class NoticeResult:
    key: str | None = None
    queued: bool = False  # this call stored the import's notice
    already: bool = False  # the notice was stored or sent by an earlier run
    sent: list[str] = field(default_factory=list)  # keys delivered by this call
    waiting: int = 0  # notices still queued after this call
    error: str | None = None  # why delivery failed (the notices stay queued)
    skipped: str | None = None  # why this import has no notice

    def describe(self) -> str:
        if self.key is None:
            parts = [f"no import notice ({self.skipped or 'nothing to tell'})"]
        else:
            parts = [f"import notice {self.key}: "
                     + ("sent" if self.key in self.sent else
                        "already handled" if self.already else "queued")]
        others = [k for k in self.sent if k != self.key]
        if others:
            parts.append(f"{len(others)} earlier notice(s) sent")
        if self.waiting:
            parts.append(f"{self.waiting} notice(s) wait for the next import run")
        if self.error:
            parts.append(f"mail not delivered: {self.error}")
        return "; ".join(parts)


def _known(con: duckdb.DuckDBPyConnection, key: str) -> bool:
    keys = json.dumps([key])
    return con.execute(
        "SELECT (SELECT count(*) FROM ops.alerts_sent WHERE alert_key = $k) + "
        "(SELECT count(*) FROM ops.alert_deliveries WHERE alert_keys = $keys "
        "AND status IN ('queued', 'sending', 'sent'))",
        {"k": key, "keys": keys}).fetchone()[0] > 0


def queue_notice(con: duckdb.DuckDBPyConnection, key: str, msg: EmailMessage, *,
                 now: datetime | None = None) -> bool:
    """Store ``msg`` as the ``queued`` notice for ``key``; False when the key is already
    queued, being sent or sent."""
    ensure_alert_tables(con)
    with transaction(con):
        if _known(con, key):
            return False
        con.execute(
            "INSERT INTO ops.alert_deliveries VALUES (?, ?, NULL, 'queued', NULL, ?, ?, ?, ?, NULL)",
            [str(msg["Message-ID"]), now or utcnow(), str(msg["To"]), str(msg["Subject"]),
             json.dumps([key]), bytes(msg)])
    return True


def _import_rows(con, statuses: Iterable[str]) -> list[tuple]:
    marks = ", ".join("?" for _ in statuses)
    return con.execute(
        f"SELECT message_id, alert_keys, recipients, subject, message FROM ops.alert_deliveries "
        f"WHERE status IN ({marks}) AND alert_keys LIKE '[\"import:%' AND message IS NOT NULL "
        "ORDER BY created_at, message_id", list(statuses)).fetchall()


def send_queued_notices(con: duckdb.DuckDBPyConnection, mailer: Mailer) -> NoticeResult:
    """Deliver every queued import notice (and any an interrupted run left ``sending``), oldest
    first; stops at the first delivery error, leaving the rest queued. Never raises for mail
    errors: they are in the result."""
    ensure_alert_tables(con)
    result = NoticeResult()
    for message_id, keys_json, to, subject, raw in _import_rows(con, ("sending", "queued")):
        keys = json.loads(keys_json)
        if all(con.execute("SELECT count(*) FROM ops.alerts_sent WHERE alert_key = ?",
                           [k]).fetchone()[0] for k in keys):
            con.execute("UPDATE ops.alert_deliveries SET status = 'sent', message = NULL "
                        "WHERE message_id = ?", [message_id])
            continue
        msg = stored_message(raw)
        if bare_address(str(msg["From"] or "")) == bare_address(UNSET_SENDER):
            # queued while the mail settings were wrong: it goes out from the configured sender,
            # stored so that a resend after an unknown outcome is the same message
            msg.replace_header("From", mailer.sender)
            con.execute("UPDATE ops.alert_deliveries SET message = ? WHERE message_id = ?",
                        [bytes(msg), message_id])
        con.execute("UPDATE ops.alert_deliveries SET status = 'sending', transport = ?, "
                    "error = NULL WHERE message_id = ?", [mailer.transport, message_id])
        try:
            delivery = mailer.deliver(msg)
        except (MailDeliveryError, MailConfigError, OSError) as exc:
            maybe = getattr(exc, "maybe_delivered", False)
            # refused or unreachable: queued again; whether the server took it unknown: left
            # sending, so the next run sends the same bytes (same Message-ID) rather than lose it
            con.execute("UPDATE ops.alert_deliveries SET status = ?, error = ? WHERE message_id = ?",
                        ["sending" if maybe else "queued", f"{type(exc).__name__}: {exc}"[:2000],
                         message_id])
            result.error = f"{type(exc).__name__}: {exc}"
            break
        finish_delivery(con, message_id, keys, to, subject, delivery.transport, utcnow())
        result.sent += keys
    result.waiting = len(_import_rows(con, ("sending", "queued")))
    return result


def notify_import(con: duckdb.DuckDBPyConnection, mailer: Mailer | None, outcome,
                  recipients: Sequence[str], *, shop_name: str,
                  now: datetime | None = None) -> NoticeResult:
    """Queue the notice of a finished import (once per import) and deliver what is queued.
    A mail failure leaves the notice queued for the next import run and is reported in the
    result, never raised: the import itself is done."""
    key = import_notice_key(outcome)
    result = NoticeResult(key=key)
    if key is None:
        result.skipped = f"the import ended {outcome.status}"
    elif not recipients:
        result.key, result.skipped = None, "no import or ops recipients"
    else:
        ensure_alert_tables(con)
        if _known(con, key):
            result.already = True
        else:
            sender = mailer.sender if mailer is not None else UNSET_SENDER
            token = _safe_token(key.split(":", 2)[2])
            msg = import_result_message(
                outcome, sender=sender, recipients=recipients, shop_name=shop_name,
                message_id=f"<import.{outcome.status}.{token}@{sender_domain(sender)}>",
                unsubscribe=mailer.unsubscribe_address if mailer is not None else None)
            result.queued = queue_notice(con, key, msg, now=now)
            result.already = not result.queued
    if mailer is None:
        result.error = result.error or "no mailer configured"
        return result
    sent = send_queued_notices(con, mailer)
    result.sent, result.waiting = sent.sent, sent.waiting
    result.error = sent.error or result.error
    return result


# -- failed runs -----------------------------------------------------------------------------
def run_failure_message(job_name: str, run_id: str, error_summary: str, ui_url: str | None, *,
                        sender: str, recipients: Sequence[str], shop_name: str | None = None,
                        secrets: Iterable[str] = ()) -> EmailMessage:
    """The e-mail to ops about a failed run. Credentials in the error text are masked; the
    Message-ID derives from the run id, so a repeated notification is recognisably the same."""
    summary = redact(error_summary or "(no error message)", secrets)
    if len(summary) > ERROR_CHARS:
        summary = summary[:ERROR_CHARS] + "\n... (truncated; the full error is in the run's logs)"
    first_line = next((line.strip() for line in summary.splitlines() if line.strip()),
                      "(no error message)")
    link = f"{ui_url.rstrip('/')}/runs/{run_id}" if ui_url else None
    subject = f"[SalesFlow] Run failed: {job_name} ({run_id[:8]})"
    body = render(
        "ops_failure", title=f"Run failed: {job_name}", subtitle=shop_name or "",
        preheader=first_line[:140], shop_name=shop_name or "", job_name=job_name, run_id=run_id,
        error=summary, first_line=first_line, link=link)
    safe_id = "".join(ch for ch in run_id if ch.isalnum() or ch in "-_.") or "run"
    return build_message(sender=sender, to=recipients, subject=subject, text=body.text,
                         html=body.html,
                         message_id=f"<run-failure.{safe_id}@{sender_domain(sender)}>",
                         headers={"X-SalesFlow-Run-Id": safe_id})
