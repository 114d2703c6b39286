"""Anomaly and stock alerts, e-mailed as one digest per run, each alert exactly once.

Which alerts an as-of day raises
--------------------------------
* Anomalies: the rows ``ml.sales_anomalies`` holds for that ``as_of`` run with a day in the
  last ``lookback_days`` (default 7), or, for a stock-out, outage or level shift (one row dated
  by its first day), a first day in the last ``EVENT_LOOKBACK_DAYS`` (28), and a severity
  other than ``none``. Key:
  ``anomaly:<series_id>:<ds>:<direction>``, so a day flagged again by a later run is not
  announced twice.
* Stock: the products ``marts.stock_status`` shows as OUT_OF_STOCK or LOW, or with another
  status and a severity other than ``none`` (cover shorter than the lead time). Key:
  ``stock:<sku>:<status>:<episode start>``, where the episode is the run of as-of days, up to
  this one, on which the product was alerting with the same status. A product that stays LOW
  for two weeks is announced once; when it runs out (a new status) or comes back after a day
  without an alert (a new episode), it is announced again. A change of severity within the
  same status is not announced again.

The ledger
----------
``ops.alerts_pending`` holds alerts found and not yet delivered, ``ops.alerts_sent`` the
delivered ones, and ``ops.alert_deliveries`` one row per digest with its Message-ID, its
alert keys, its status and, while it is unconfirmed, the message itself. A run

1. records its new alerts as pending (a key already pending or sent is skipped), and commits;
2. finishes any delivery a previous run left in ``sending`` (see below);
3. sends every pending alert, grouped by recipient list, one digest per group, highest
   severity first: it first commits a ``sending`` delivery row, then hands the message to the
   SMTP server (or writes it to the outbox), then, in one transaction, moves the digest's
   alerts from pending to sent and marks the delivery ``sent``.

When the server cannot be reached or refuses the message, the delivery is marked ``failed``,
the alerts stay pending, and ``AlertDeliveryError`` says so; the next run sends them, once.

The window a ledger cannot close: if the process dies after the server accepted a digest and
before the ledger commit (or the connection breaks after the message data was sent, so the
answer is unknown), the delivery stays ``sending``. The next run then sends the very same
message again, byte for byte with the same Message-ID (``unconfirmed="resend"``, the default:
an alert is never lost, and mail programs that de-duplicate by Message-ID show it once), or
marks it sent without sending (``unconfirmed="assume_sent"``: never twice, possibly lost).
Two runs never send at once: DuckDB lets one process write the warehouse at a time.
"""

from __future__ import annotations

import html
import json
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from email.utils import formataddr, getaddresses, make_msgid, parseaddr
from typing import Any, Iterable, Sequence

import duckdb

from salesflow.anomalies import MULTI_DAY_KINDS
from salesflow.errors import AlertDeliveryError, MailDeliveryError
from salesflow.mailer import Delivery, Mailer, Recipients, build_message
from salesflow.reports.charts import SEVERITY_COLORS, anomaly_chart_png
from salesflow.reports.content import finite, severity_rank
from salesflow.reports.files import report_message
from salesflow.warehouse import OPS_DDL, has_table, transaction

ALERT_DDL = {name: OPS_DDL[name] for name in ("ops.alert_deliveries",)}
ANOMALY_LOOKBACK_DAYS = 7
# a stock-out, outage or level shift that began up to this many days ago is still news
EVENT_LOOKBACK_DAYS = 28
STATUS_LABELS = {"OUT_OF_STOCK": "out of stock", "LOW": "low on stock", "DEAD": "not selling",
                 "OVERSTOCK": "overstocked", "OK": "stock cover short"}


def utcnow() -> datetime:
    return datetime.now(tz=timezone.utc).replace(tzinfo=None)


def ensure_alert_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS ops")
    for name in ("ops.alerts_pending", "ops.alerts_sent"):
        con.execute(OPS_DDL[name])
    for ddl in ALERT_DDL.values():
        con.execute(ddl)


# -- alerts ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Alert:
    key: str
    kind: str  # "anomaly" or "stock"
    severity: str
    title: str
    as_of: date
    details: dict[str, Any] = field(default_factory=dict)

    def payload(self) -> str:
        body = {"severity": self.severity, "title": self.title, "as_of": self.as_of.isoformat(),
                **self.details}
        return json.dumps(body, default=str, sort_keys=True)


def _num(value, places: int = 2) -> str:
    return "n/a" if value is None else f"{float(value):,.{places}f}"


def anomaly_alerts(con: duckdb.DuckDBPyConnection, as_of: date, *,
                   lookback_days: int = ANOMALY_LOOKBACK_DAYS) -> list[Alert]:
    if not has_table(con, "ml", "sales_anomalies"):
        return []
    names = {}
    if has_table(con, "marts", "stock_status"):
        names = dict(con.execute(
            "SELECT sku, any_value(product_name) FROM marts.stock_status WHERE as_of = ? GROUP BY sku",
            [as_of]).fetchall())
    # a stock-out, outage or level shift is one row dated by its first day, which may lie before
    # the window when the event was confirmed later: the run writes it while it reaches into its
    # lookback, and the ledger mails its key once; one that began more than EVENT_LOOKBACK_DAYS
    # ago is not news
    events = ", ".join(f"'{k}'" for k in MULTI_DAY_KINDS)
    rows = con.execute(
        f"""SELECT series_id, ds, direction, severity, observed, expected, lower, upper, score,
                  kind, note
           FROM ml.sales_anomalies
           WHERE as_of = ? AND ds <= ? AND (ds >= ? OR (kind IN ({events}) AND ds >= ?))
             AND coalesce(lower(severity), 'none') <> 'none'
           QUALIFY row_number() OVER (PARTITION BY series_id, ds, direction
                                      ORDER BY abs(score) DESC NULLS LAST) = 1
           ORDER BY ds, series_id""",
        [as_of, as_of, as_of - timedelta(days=lookback_days - 1),
         as_of - timedelta(days=max(lookback_days, EVENT_LOOKBACK_DAYS) - 1)]).fetchall()
    out = []
    for row in rows:
        series, ds, direction, severity, observed, expected, lower, upper, score, kind, note = (
            finite(v) for v in row)
        label = "Total sales" if series == "TOTAL" else (
            f"{names[series]} ({series})" if names.get(series) else str(series))
        word = {"up": "above", "down": "below"}.get(str(direction).lower(), "outside")
        when = f"since {ds.isoformat()}" if kind in MULTI_DAY_KINDS else f"on {ds.isoformat()}"
        title = (f"{label} {word} the expected band {when}: observed {_num(observed)}, "
                 f"expected {_num(expected)} ({_num(lower)} - {_num(upper)})")
        out.append(Alert(
            key=f"anomaly:{series}:{ds.isoformat()}:{direction}", kind="anomaly",
            severity=str(severity).lower(), title=title, as_of=as_of,
            details={"series_id": series, "label": label, "ds": ds.isoformat(),
                     "direction": direction, "observed": observed, "expected": expected,
                     "lower": lower, "upper": upper, "score": score, "anomaly_kind": kind,
                     "note": note}))
    return out


_STOCK_ALERTS_SQL = """
    WITH alerting AS (
        SELECT *, status IN ('OUT_OF_STOCK', 'LOW') OR coalesce(lower(severity), 'none') <> 'none'
                  AS is_alert
        FROM marts.stock_status WHERE as_of <= $as_of),
    cur AS (SELECT * FROM alerting WHERE as_of = $as_of AND is_alert),
    hist AS (
        SELECT h.sku, h.as_of, h.is_alert AND h.status = c.status AS same
        FROM alerting h JOIN cur c ON c.sku = h.sku),
    last_break AS (SELECT sku, max(as_of) AS day FROM hist WHERE NOT same GROUP BY sku),
    episode AS (
        SELECT h.sku, min(h.as_of) AS start
        FROM hist h LEFT JOIN last_break b ON b.sku = h.sku
        WHERE h.same AND (b.day IS NULL OR h.as_of > b.day)
        GROUP BY h.sku)
    SELECT c.sku, coalesce(c.product_name, c.sku), c.status, lower(c.severity), c.stock_quantity,
           c.low_stock_threshold, c.avg_daily_units_28d, c.days_of_cover, c.reorder_qty,
           e.start
    FROM cur c JOIN episode e ON e.sku = c.sku
    ORDER BY c.sku"""


def stock_alerts(con: duckdb.DuckDBPyConnection, as_of: date) -> list[Alert]:
    if not has_table(con, "marts", "stock_status"):
        return []
    out = []
    for sku, name, status, severity, stock, threshold, avg_units, cover, reorder, start in \
            con.execute(_STOCK_ALERTS_SQL, {"as_of": as_of}).fetchall():
        what = STATUS_LABELS.get(status, status.lower())
        cover_text = "no recent sales" if cover is None else f"{_num(cover, 1)} days of cover"
        title = (f"{name} ({sku}) {what}: stock {stock}, threshold {threshold}, {cover_text}"
                 + (f"; reorder {reorder}" if reorder else ""))
        out.append(Alert(
            key=f"stock:{sku}:{status}:{start.isoformat()}", kind="stock",
            severity=severity or "none", title=title, as_of=as_of,
            details={"sku": sku, "product_name": name, "status": status, "stock_quantity": stock,
                     "low_stock_threshold": threshold, "avg_daily_units_28d": avg_units,
                     "days_of_cover": cover, "reorder_qty": reorder,
                     "since": start.isoformat()}))
    return out


def build_alerts(con: duckdb.DuckDBPyConnection, as_of: date, *,
                 lookback_days: int = ANOMALY_LOOKBACK_DAYS) -> list[Alert]:
    """The as-of day's anomaly and stock alerts, most severe first."""
    alerts = anomaly_alerts(con, as_of, lookback_days=lookback_days) + stock_alerts(con, as_of)
    return sorted(alerts, key=lambda a: (severity_rank(a.severity), a.kind, a.key))


# -- the ledger ------------------------------------------------------------------------------
def record_pending(con: duckdb.DuckDBPyConnection, alerts: Iterable[Alert],
                   recipients: Recipients, *, now: datetime | None = None) -> dict[str, list[str]]:
    """Add alerts to ``ops.alerts_pending`` unless their key is already pending or sent.
    Returns the keys ``recorded``, ``known`` (already pending or sent) and ``unaddressed``
    (no recipients for their kind, not recorded)."""
    ensure_alert_tables(con)
    now = now or utcnow()
    out = {"recorded": [], "known": [], "unaddressed": []}
    with transaction(con):
        for alert in alerts:
            known = con.execute(
                "SELECT (SELECT count(*) FROM ops.alerts_pending WHERE alert_key = $k) + "
                "(SELECT count(*) FROM ops.alerts_sent WHERE alert_key = $k)", {"k": alert.key}
            ).fetchone()[0]
            if known:
                out["known"].append(alert.key)
                continue
            to = recipients.for_alert(alert.kind)
            if not to:
                out["unaddressed"].append(alert.key)
                continue
            con.execute("INSERT INTO ops.alerts_pending VALUES (?, ?, ?, ?, ?, ?)",
                        [alert.key, alert.kind, now, ", ".join(to), alert.title, alert.payload()])
            out["recorded"].append(alert.key)
    return out


@dataclass(frozen=True)
class PendingAlert:
    key: str
    kind: str
    created_at: datetime
    recipients: tuple[str, ...]
    subject: str
    payload: dict[str, Any]

    @property
    def severity(self) -> str:
        return str(self.payload.get("severity") or "none")


def pending_alerts(con: duckdb.DuckDBPyConnection) -> list[PendingAlert]:
    ensure_alert_tables(con)
    rows = con.execute("SELECT alert_key, kind, created_at, recipients, subject, payload "
                       "FROM ops.alerts_pending ORDER BY created_at, alert_key").fetchall()
    out = []
    for key, kind, created, to, subject, payload in rows:
        try:
            data = json.loads(payload or "{}")
        except ValueError:
            data = {}
        addresses = tuple(formataddr(p) if p[0] else p[1] for p in getaddresses([to or ""]) if p[1])
        out.append(PendingAlert(key, kind, created, addresses, subject or key, data))
    return out


# -- the digest ------------------------------------------------------------------------------
def _severity_counts(alerts: Sequence[PendingAlert]) -> str:
    counts: OrderedDict[str, int] = OrderedDict()
    for a in sorted(alerts, key=lambda a: severity_rank(a.severity)):
        counts[a.severity] = counts.get(a.severity, 0) + 1
    return ", ".join(f"{n} {sev}" for sev, n in counts.items())


def _detail_lines(a: PendingAlert) -> list[str]:
    p = a.payload
    if a.kind == "anomaly":
        return [f"observed {_num(p.get('observed'))}, expected {_num(p.get('expected'))}, "
                f"expected band {_num(p.get('lower'))} - {_num(p.get('upper'))}, "
                f"score {_num(p.get('score'))}"] + ([str(p["note"])] if p.get("note") else [])
    if a.kind == "stock":
        return [f"status {p.get('status')}, stock {p.get('stock_quantity')} "
                f"(threshold {p.get('low_stock_threshold')}), "
                f"{_num(p.get('avg_daily_units_28d'), 2)} units/day, cover "
                f"{_num(p.get('days_of_cover'), 1)} days, reorder quantity {p.get('reorder_qty')}; "
                f"since {p.get('since')}"]
    return []


def digest_message(alerts: Sequence[PendingAlert], *, sender: str, recipients: Sequence[str],
                   shop_name: str, message_id: str | None = None) -> EmailMessage:
    """One e-mail listing ``alerts``, highest severity first, with a chart of the anomalies
    against their expected bands."""
    ordered = sorted(alerts, key=lambda a: (severity_rank(a.severity), a.kind, a.key))
    n = len(ordered)
    kinds = sorted({a.kind for a in ordered})
    what = " and ".join({"anomaly": "sales anomalies", "stock": "stock"}.get(k, k) for k in kinds)
    subject = f"[SalesFlow] {shop_name}: {n} alert{'s' if n != 1 else ''} ({_severity_counts(ordered)}) - {what}"
    points = [{"label": f"{a.payload.get('series_id', a.key)} {a.payload.get('ds', '')}",
               "observed": a.payload.get("observed"), "expected": a.payload.get("expected"),
               "lower": a.payload.get("lower"), "upper": a.payload.get("upper"),
               "severity": a.severity} for a in ordered if a.kind == "anomaly"]
    chart = anomaly_chart_png(points) if points else None

    text_lines = [f"{n} new alert{'s' if n != 1 else ''} for {shop_name}, most severe first.", ""]
    for a in ordered:
        text_lines.append(f"[{a.severity.upper()}] {a.kind}: {a.subject}")
        text_lines += [f"    {line}" for line in _detail_lines(a)]
        text_lines.append("")
    if chart:
        text_lines.append("The HTML version shows the anomalies against their expected bands.")
    text_lines.append("Each alert is sent once; the ledger is ops.alerts_sent.")

    rows = []
    for a in ordered:
        color = SEVERITY_COLORS.get(a.severity, "#8a8f98")
        rows.append(
            "<tr>"
            f"<td style=\"background:{color};color:#fff;padding:4px 8px;font-weight:bold\">"
            f"{html.escape(a.severity.upper())}</td>"
            f"<td style=\"padding:4px 8px\">{html.escape(a.kind)}</td>"
            f"<td style=\"padding:4px 8px\"><b>{html.escape(a.subject)}</b><br>"
            f"<span style=\"color:#555\">{'<br>'.join(html.escape(x) for x in _detail_lines(a))}</span></td>"
            "</tr>")
    body = (f"<html><body style=\"font-family:Arial,sans-serif;font-size:14px\">"
            f"<p>{n} new alert{'s' if n != 1 else ''} for <b>{html.escape(shop_name)}</b>, most severe first.</p>"
            f"<table style=\"border-collapse:collapse\">{''.join(rows)}</table>"
            + ("<p><img src=\"cid:anomalies\" alt=\"Anomalies against their expected bands\"></p>"
               if chart else "")
            + "<p style=\"color:#777;font-size:12px\">Each alert is sent once.</p></body></html>")
    return build_message(sender=sender, to=recipients, subject=subject, text="\n".join(text_lines),
                         html=body, inline_images={"anomalies": chart} if chart else None,
                         message_id=message_id,
                         headers={"X-SalesFlow-Alerts": str(n)})


# -- delivery with the ledger ----------------------------------------------------------------
def _finish(con, message_id: str, keys: Sequence[str], recipients: str, subject: str,
            transport: str, now: datetime) -> None:
    with transaction(con):
        for key in keys:
            con.execute("DELETE FROM ops.alerts_pending WHERE alert_key = ?", [key])
            if not con.execute("SELECT count(*) FROM ops.alerts_sent WHERE alert_key = ?",
                               [key]).fetchone()[0]:
                con.execute("INSERT INTO ops.alerts_sent VALUES (?, ?, ?, ?)",
                            [key, now, recipients, subject])
        con.execute("UPDATE ops.alert_deliveries SET status = 'sent', finished_at = ?, "
                    "transport = ?, message = NULL WHERE message_id = ?", [now, transport, message_id])


def deliver_tracked(con: duckdb.DuckDBPyConnection, mailer: Mailer, msg: EmailMessage,
                    keys: Sequence[str], *, now: datetime | None = None) -> Delivery:
    """Send ``msg`` for the ledger ``keys``: a ``sending`` delivery row first, then the
    message, then keys moved to ``ops.alerts_sent``. Raises MailDeliveryError when sending
    fails (the delivery row is ``failed``, or stays ``sending`` when the outcome is unknown)."""
    ensure_alert_tables(con)
    now = now or utcnow()
    message_id = str(msg["Message-ID"])
    subject = str(msg["Subject"])
    to = str(msg["To"])
    con.execute("INSERT INTO ops.alert_deliveries VALUES (?, ?, NULL, 'sending', ?, ?, ?, ?, ?, NULL)",
                [message_id, now, mailer.transport, to, subject, json.dumps(list(keys)), bytes(msg)])
    try:
        delivery = mailer.deliver(msg)
    except Exception as exc:
        if not getattr(exc, "maybe_delivered", False):
            con.execute("UPDATE ops.alert_deliveries SET status = 'failed', finished_at = ?, "
                        "error = ?, message = NULL WHERE message_id = ?",
                        [utcnow(), f"{type(exc).__name__}: {exc}", message_id])
        raise
    _finish(con, message_id, keys, to, subject, delivery.transport, utcnow())
    return delivery


def _recover(con, mailer: Mailer, unconfirmed: str, only_keys: Sequence[str] | None = None) -> list[Delivery]:
    """Finish deliveries an earlier run left in ``sending``: resend the stored message (same
    bytes, same Message-ID) or, with ``assume_sent``, record it as sent."""
    rows = con.execute("SELECT message_id, alert_keys, recipients, subject, message "
                       "FROM ops.alert_deliveries WHERE status = 'sending' ORDER BY created_at").fetchall()
    out = []
    for message_id, keys_json, to, subject, raw in rows:
        keys = json.loads(keys_json or "[]")
        if only_keys is not None and sorted(keys) != sorted(only_keys):
            continue
        if unconfirmed == "assume_sent":
            _finish(con, message_id, keys, to, subject, "assumed", utcnow())
            continue
        msg = message_from_bytes(bytes(raw), policy=email_policy.default)
        try:
            delivery = mailer.deliver(msg)
        except MailDeliveryError as exc:
            raise AlertDeliveryError(
                f"resending the unconfirmed message {subject!r} failed: {exc}. Its "
                f"{len(keys)} ledger key(s) stay pending and the next run tries again with the "
                "same Message-ID.", maybe_delivered=exc.maybe_delivered) from None
        _finish(con, message_id, keys, to, subject, delivery.transport, utcnow())
        out.append(delivery)
    return out


@dataclass
class AlertRunResult:
    as_of: date | None
    found: int = 0
    recorded: list[str] = field(default_factory=list)
    already_known: list[str] = field(default_factory=list)
    unaddressed: list[str] = field(default_factory=list)
    sent_keys: list[str] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    pending_left: int = 0

    def metadata(self) -> dict[str, Any]:
        return {
            "alerts_found": self.found, "alerts_recorded": len(self.recorded),
            "alerts_already_known": len(self.already_known),
            "alerts_without_recipients": len(self.unaddressed),
            "alerts_sent": len(self.sent_keys), "messages_sent": len(self.deliveries),
            "alerts_pending": self.pending_left,
            "transport": ", ".join(sorted({d.transport for d in self.deliveries})) or "none",
        }


def send_pending(con: duckdb.DuckDBPyConnection, mailer: Mailer, *, shop_name: str,
                 now: datetime | None = None, unconfirmed: str = "resend",
                 result: AlertRunResult | None = None) -> AlertRunResult:
    """Deliver every pending alert: one digest per recipient list. Raises AlertDeliveryError
    (alerts left pending) when a digest cannot be delivered."""
    if unconfirmed not in ("resend", "assume_sent"):
        raise ValueError("unconfirmed must be 'resend' or 'assume_sent'")
    ensure_alert_tables(con)
    result = result or AlertRunResult(as_of=None)
    for d in _recover(con, mailer, unconfirmed):
        result.deliveries.append(d)
    groups: OrderedDict[tuple[str, ...], list[PendingAlert]] = OrderedDict()
    for alert in sorted(pending_alerts(con), key=lambda a: (severity_rank(a.severity), a.key)):
        groups.setdefault(alert.recipients, []).append(alert)
    for recipients, alerts in groups.items():
        msg = digest_message(alerts, sender=mailer.sender, recipients=recipients,
                             shop_name=shop_name,
                             message_id=make_msgid(domain=_sender_domain(mailer.sender)))
        keys = [a.key for a in alerts]
        try:
            delivery = deliver_tracked(con, mailer, msg, keys, now=now)
        except MailDeliveryError as exc:
            left = con.execute("SELECT count(*) FROM ops.alerts_pending").fetchone()[0]
            outcome = ("the server may have accepted it; the next run resends the same message"
                       if exc.maybe_delivered else "nothing was delivered")
            raise AlertDeliveryError(
                f"alert digest not delivered ({outcome}): {exc}. {left} alert(s) stay pending "
                "in ops.alerts_pending and go out with the next run.",
                maybe_delivered=exc.maybe_delivered) from None
        result.deliveries.append(delivery)
        result.sent_keys += keys
    result.pending_left = con.execute("SELECT count(*) FROM ops.alerts_pending").fetchone()[0]
    return result


def _sender_domain(sender: str) -> str:
    addr = parseaddr(sender)[1]
    return addr.rsplit("@", 1)[1] if "@" in addr else "salesflow.local"


def run_alerts(
    con: duckdb.DuckDBPyConnection,
    as_of: date,
    mailer: Mailer,
    recipients: Recipients,
    *,
    shop_name: str,
    now: datetime | None = None,
    lookback_days: int = ANOMALY_LOOKBACK_DAYS,
    unconfirmed: str = "resend",
) -> AlertRunResult:
    """Find the as-of day's alerts, record the new ones, deliver everything pending."""
    alerts = build_alerts(con, as_of, lookback_days=lookback_days)
    recorded = record_pending(con, alerts, recipients, now=now)
    result = AlertRunResult(as_of=as_of, found=len(alerts), recorded=recorded["recorded"],
                            already_known=recorded["known"], unaddressed=recorded["unaddressed"])
    return send_pending(con, mailer, shop_name=shop_name, now=now, unconfirmed=unconfirmed,
                        result=result)


# -- reports ----------------------------------------------------------------------------------
def report_key(kind: str, as_of: date) -> str:
    return f"report:{kind}:{as_of.isoformat()}"


def send_report_once(con: duckdb.DuckDBPyConnection, mailer: Mailer, files, recipients: Sequence[str],
                     *, now: datetime | None = None, unconfirmed: str = "resend") -> Delivery | None:
    """E-mail a written report (``salesflow.reports.ReportFiles``) unless the ledger shows it
    was sent; None when it was, or when nobody is to receive it. A rerun of the partition does
    not send it again; a failed send raises MailDeliveryError and the rerun sends it."""
    if not recipients:
        return None
    ensure_alert_tables(con)
    key = report_key(files.kind, files.as_of)
    if con.execute("SELECT count(*) FROM ops.alerts_sent WHERE alert_key = ?", [key]).fetchone()[0]:
        return None
    recovered = _recover(con, mailer, unconfirmed, only_keys=[key])
    if recovered:
        return recovered[0]
    if unconfirmed == "assume_sent" and con.execute(
            "SELECT count(*) FROM ops.alerts_sent WHERE alert_key = ?", [key]).fetchone()[0]:
        return None
    msg = report_message(files, sender=mailer.sender, recipients=recipients,
                         message_id=make_msgid(domain=_sender_domain(mailer.sender)))
    return deliver_tracked(con, mailer, msg, [key], now=now)
