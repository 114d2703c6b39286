"""Anomaly and stock alerts: which alerts a day raises, the digest, and the ledger that sends
each alert once, over a real SMTP server on loopback."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from decimal import Decimal
from email import policy as email_policy
from email.parser import BytesParser

import pytest

import salesflow.alerts as alerts_mod
from salesflow import marts
from salesflow.alerts import (build_alerts, pending_alerts, run_alerts, send_report_once,
                              stock_alerts)
from salesflow.errors import AlertDeliveryError, MailDeliveryError
from salesflow.mailer import Mailer, Recipients, SmtpSettings
from salesflow.reports import write_report
from tests.test_mailer import Collector, free_port, smtp_server, start_server  # noqa: F401
from tests.test_reports import (AS_OF, AS_OF_DAYS, NOW, SETTINGS, add_anomalies,  # noqa: F401
                                con, shop_template, warehouse)

FIRST_AS_OF = AS_OF - timedelta(days=AS_OF_DAYS - 1)
OWNER = "owner@shop.example"
SAME = Recipients(alerts={"anomaly": (OWNER, "Manager <manager@shop.example>"),
                          "stock": (OWNER, "Manager <manager@shop.example>")})
SHOP = "Demo shop"


def ledger(con) -> dict[str, int]:
    return {t: con.execute(f"SELECT count(*) FROM ops.{t}").fetchone()[0]
            for t in ("alerts_pending", "alerts_sent", "alert_deliveries")}


def alerting_skus(con, day=AS_OF) -> dict[str, str]:
    return dict(con.execute("SELECT sku, status FROM marts.stock_status WHERE as_of = ? AND "
                            "(status IN ('OUT_OF_STOCK', 'LOW') OR severity <> 'none')", [day]).fetchall())


def build_next_day(con) -> date:
    """The marts of the day after AS_OF, as the next daily run builds them."""
    next_day = AS_OF + timedelta(days=1)
    marts.build_daily(con, next_day, next_day)
    marts.build_as_of(con, next_day)
    return next_day


# -- which alerts ----------------------------------------------------------------------------
def test_alerts_of_a_day_ranked_by_money(con):
    add_anomalies(con)
    found = build_alerts(con, AS_OF, currency="EUR")
    anomalies = [a for a in found if a.kind == "anomaly"]
    assert {a.key for a in anomalies} == {"anomaly:TOTAL:2025-06-28:down", "anomaly:SNK-00002:2025-06-27:up"}
    total = next(a for a in anomalies if a.details["series_id"] == "TOTAL")
    # the shop's revenue: 40.00 observed where 130.00 was expected
    assert total.value == Decimal("-90.00") and total.value_note == "revenue below expected"
    # what explains the shop's gap travels with the alert: 40 / 130 is 69% below
    assert total.details["explanation"].startswith("Revenue 69% below expected")
    assert "40.00 EUR where 130.00 EUR was expected (usual range 95.00 EUR to 165.00 EUR)" in total.title
    spike = next(a for a in anomalies if a.details["series_id"] == "SNK-00002")
    price, = con.execute("SELECT price FROM raw.products WHERE sku = 'SNK-00002'").fetchone()
    assert spike.value == (Decimal(30 - 6) * price).quantize(Decimal("0.01"))
    stock = [a for a in found if a.kind == "stock"]
    assert {a.details["sku"]: a.details["status"] for a in stock} == alerting_skus(con)
    assert all(a.key == f"stock:{a.details['sku']}:{a.details['status']}:{FIRST_AS_OF}" for a in stock)
    values = [abs(a.value or 0) for a in found]
    assert values == sorted(values, reverse=True) and values[0] > 0
    assert build_alerts(con, AS_OF - timedelta(days=1))[0].kind == "stock"  # no anomaly run that day


def test_a_stock_episode_starts_again_after_a_break_or_a_new_status(con):
    low = [sku for sku, status in alerting_skus(con).items() if status == "LOW"]
    assert low, "the demo shop has a LOW product on its last day"
    sku = low[0]
    threshold, = con.execute("SELECT low_stock_threshold FROM raw.products WHERE sku = ?", [sku]).fetchone()
    # on 25 June a restock lifted it above the threshold; on 30 June it ran out
    con.execute("INSERT INTO raw.stock_snapshots VALUES ('2025-06-25', ?, ?, ?)", [sku, threshold + 500, threshold])
    marts.build_as_of(con, date(2025, 6, 25))
    keys = {a.details["sku"]: a.key for a in stock_alerts(con, date(2025, 6, 29))}
    assert keys[sku] == f"stock:{sku}:LOW:2025-06-26"
    con.execute("INSERT INTO raw.stock_snapshots VALUES (?, ?, 0, ?)", [AS_OF, sku, threshold])
    marts.build_as_of(con, AS_OF)
    keys = {a.details["sku"]: a.key for a in stock_alerts(con, AS_OF)}
    assert keys[sku] == f"stock:{sku}:OUT_OF_STOCK:{AS_OF}"


# -- the digest and the ledger ---------------------------------------------------------------
def test_one_digest_per_run_and_a_second_run_sends_nothing(con, smtp_server):
    add_anomalies(con)
    mailer = smtp_server.mailer()
    first = run_alerts(con, AS_OF, mailer, SAME, shop_name=SHOP, now=NOW.replace(tzinfo=None))
    n = len(build_alerts(con, AS_OF))
    assert first.found == n and len(first.recorded) == n and len(first.sent_keys) == n
    assert len(smtp_server.messages) == 1
    got = smtp_server.messages[0]
    assert sorted(got["rcpt_tos"]) == ["manager@shop.example", OWNER]
    msg = got["message"]
    n_critical = sum(1 for a in build_alerts(con, AS_OF) if a.severity == "critical")
    # the warehouse's first digest: the current state
    assert msg["Subject"].startswith(f"[SalesFlow] {SHOP}: current state, {n} open alerts, ")
    assert f"({n_critical} critical, " in msg["Subject"]
    assert msg["X-SalesFlow-Alerts"] == str(n) and msg["X-SalesFlow-Digest"] == "summary"
    text = msg.get_body(("plain",)).get_content()
    cards = [line for line in text.splitlines() if re.match(r"\d+\. ", line)]
    assert len(cards) == n
    amounts = [Decimal(re.match(r"\d+\. [+-]?([\d,]+\.\d\d) EUR", c).group(1).replace(",", ""))
               for c in cards]
    assert amounts == sorted(amounts, reverse=True)
    assert "usual range 95.00 EUR to 165.00 EUR" in text and "revenue at risk over the 7-day lead time" in text
    html = msg.get_body(("html",)).get_content()
    images = [p for p in msg.walk() if p.get_content_type() == "image/png"]
    assert len(images) == 1 and images[0].get_content().startswith(b"\x89PNG")
    assert f'cid:{images[0]["Content-ID"].strip("<>")}' in html
    assert ledger(con) == {"alerts_pending": 0, "alerts_sent": n, "alert_deliveries": 1}
    assert con.execute("SELECT status, message IS NULL, json_array_length(alert_keys) "
                       "FROM ops.alert_deliveries").fetchone() == ("sent", True, n)
    sent = con.execute("SELECT DISTINCT recipients, subject FROM ops.alerts_sent").fetchall()
    assert sent == [(str(msg["To"]), msg["Subject"])]

    again = run_alerts(con, AS_OF, mailer, SAME, shop_name=SHOP)
    assert again.recorded == [] and len(again.already_known) == n and again.deliveries == []
    assert len(smtp_server.messages) == 1
    # the day before (an older partition rerun) raises the same stock episodes: nothing new
    older = run_alerts(con, AS_OF - timedelta(days=1), mailer, SAME, shop_name=SHOP)
    assert older.found > 0 and older.recorded == [] and len(smtp_server.messages) == 1
    assert ledger(con)["alerts_sent"] == n


def test_an_event_confirmed_after_the_window_is_mailed_once_under_its_first_day(con, smtp_server):
    # a level shift is one row dated by its first day, which lies 12 days back when the shift is
    # confirmed; a one-day spike that old is outside the alert window
    first = AS_OF - timedelta(days=12)
    add_anomalies(con, [
        (AS_OF, "SNK-00003", first, 30.0, 60.0, 50.0, 70.0, -5.0, "down", "high", "level_shift",
         "40% below for 12 open days so far"),
        (AS_OF, "SNK-00004", first, 90.0, 30.0, 20.0, 40.0, 6.0, "up", "high", "units", "old spike"),
    ])
    keys = {a.key for a in build_alerts(con, AS_OF) if a.kind == "anomaly"}
    assert f"anomaly:SNK-00003:{first}:down" in keys
    assert f"anomaly:SNK-00004:{first}:up" not in keys
    # a shift that began months ago is not news
    add_anomalies(con, [(AS_OF, "SNK-00005", AS_OF - timedelta(days=200), 3.0, 6.0, 5.0, 7.0, -5.0, "down",
                         "high", "level_shift", "50% below for 180 open days so far")])
    assert not [k for k in (a.key for a in build_alerts(con, AS_OF)) if k.startswith("anomaly:SNK-00005")]
    shift = next(a for a in build_alerts(con, AS_OF) if a.key == f"anomaly:SNK-00003:{first}:down")
    assert shift.details["since"] == f"since {first}" and f"since {first:%a %d %b %Y}" in shift.title
    mailer = smtp_server.mailer()
    run_alerts(con, AS_OF, mailer, SAME, shop_name=SHOP)
    sent = len(smtp_server.messages)
    # the next day's run writes the same continuing event again: no second e-mail for it
    next_day = build_next_day(con)
    add_anomalies(con, [(next_day, "SNK-00003", first, 31.0, 60.0, 50.0, 70.0, -5.0, "down", "high",
                         "level_shift", "40% below for 13 open days so far")])
    result = run_alerts(con, next_day, mailer, SAME, shop_name=SHOP)
    assert f"anomaly:SNK-00003:{first}:down" not in result.recorded
    assert len(smtp_server.messages) == sent


def test_the_next_day_sends_only_its_new_alerts(con, smtp_server):
    mailer = smtp_server.mailer()
    run_alerts(con, AS_OF, mailer, SAME, shop_name=SHOP)
    assert len(smtp_server.messages) == 1
    next_day = build_next_day(con)
    add_anomalies(con, [(next_day, "TOTAL", next_day, 10.0, 120.0, 90.0, 150.0, -6.0, "down", "critical",
                         "outage", "till offline")])
    result = run_alerts(con, next_day, mailer, SAME, shop_name=SHOP)
    assert result.recorded == [f"anomaly:TOTAL:{next_day}:down"]
    assert len(smtp_server.messages) == 2
    second = smtp_server.messages[1]["message"]
    assert "1 new alert, 110.00 EUR at stake (1 critical)" in second["Subject"]
    assert second["X-SalesFlow-Digest"] == "new"


def test_recipients_per_alert_kind_get_their_own_digest(con, smtp_server):
    add_anomalies(con)
    recipients = Recipients(alerts={"anomaly": ("analyst@shop.example",), "stock": ("buyer@shop.example",)})
    run_alerts(con, AS_OF, smtp_server.mailer(), recipients, shop_name=SHOP)
    by_rcpt = {tuple(m["rcpt_tos"]): m["message"] for m in smtp_server.messages}
    assert set(by_rcpt) == {("analyst@shop.example",), ("buyer@shop.example",)}
    assert "sales anomalies" in by_rcpt[("analyst@shop.example",)]["Subject"]
    assert "stock" in by_rcpt[("buyer@shop.example",)]["Subject"]
    assert "anomalies" not in by_rcpt[("buyer@shop.example",)]["Subject"]
    nobody = run_alerts(con, AS_OF, smtp_server.mailer(), Recipients(), shop_name=SHOP)
    assert nobody.recorded == [] and len(nobody.unaddressed) == 0 and len(smtp_server.messages) == 2


def test_alerts_without_recipients_are_not_recorded(con, smtp_server):
    add_anomalies(con)
    only_stock = Recipients(alerts={"stock": (OWNER,)})
    result = run_alerts(con, AS_OF, smtp_server.mailer(), only_stock, shop_name=SHOP)
    assert sorted(result.unaddressed) == ["anomaly:SNK-00002:2025-06-27:up", "anomaly:TOTAL:2025-06-28:down"]
    assert all(k.startswith("stock:") for k in result.sent_keys)


def test_smtp_down_fails_the_run_and_the_next_run_sends_once(con, smtp_server):
    add_anomalies(con)
    down = Mailer(SmtpSettings(host="127.0.0.1", port=free_port(), security="none",
                               sender="alerts@shop.example", timeout_s=2))
    with pytest.raises(AlertDeliveryError) as err:
        run_alerts(con, AS_OF, down, SAME, shop_name=SHOP)
    n = len(build_alerts(con, AS_OF))
    message = str(err.value)
    assert "127.0.0.1" in message and "connect failed" in message and "nothing was delivered" in message
    assert f"{n} alert(s) stay pending" in message
    assert ledger(con) == {"alerts_pending": n, "alerts_sent": 0, "alert_deliveries": 1}
    assert con.execute("SELECT status FROM ops.alert_deliveries").fetchone()[0] == "failed"
    with pytest.raises(AlertDeliveryError):  # still down: nothing is recorded twice
        run_alerts(con, AS_OF, down, SAME, shop_name=SHOP)
    assert ledger(con)["alerts_pending"] == n

    result = run_alerts(con, AS_OF, smtp_server.mailer(), SAME, shop_name=SHOP)
    assert len(result.sent_keys) == n and len(smtp_server.messages) == 1
    assert ledger(con)["alerts_pending"] == 0 and ledger(con)["alerts_sent"] == n
    run_alerts(con, AS_OF, smtp_server.mailer(), SAME, shop_name=SHOP)
    assert len(smtp_server.messages) == 1


def test_a_crash_after_the_server_accepted_resends_the_same_message(con, smtp_server, monkeypatch):
    add_anomalies(con)
    real_finish = alerts_mod._finish
    crashed = []

    def crash_once(*args, **kwargs):
        if not crashed:
            crashed.append(True)
            raise SystemExit("killed between the SMTP answer and the ledger commit")
        return real_finish(*args, **kwargs)

    monkeypatch.setattr(alerts_mod, "_finish", crash_once)
    mailer = smtp_server.mailer()
    with pytest.raises(SystemExit):
        run_alerts(con, AS_OF, mailer, SAME, shop_name=SHOP)
    n = len(build_alerts(con, AS_OF))
    assert len(smtp_server.messages) == 1
    assert ledger(con)["alerts_pending"] == n
    assert con.execute("SELECT status FROM ops.alert_deliveries").fetchall() == [("sending",)]

    result = run_alerts(con, AS_OF, mailer, SAME, shop_name=SHOP)
    assert len(smtp_server.messages) == 2
    first, second = smtp_server.messages
    assert second["message"]["Message-ID"] == first["message"]["Message-ID"]
    assert second["raw"] == first["raw"]
    assert len(result.deliveries) == 1 and result.recorded == []
    assert ledger(con) == {"alerts_pending": 0, "alerts_sent": n, "alert_deliveries": 1}
    run_alerts(con, AS_OF, mailer, SAME, shop_name=SHOP)
    assert len(smtp_server.messages) == 2


def test_assume_sent_never_sends_an_unconfirmed_message_again(con, smtp_server, monkeypatch):
    real_finish = alerts_mod._finish
    monkeypatch.setattr(alerts_mod, "_finish", lambda *a, **k: (_ for _ in ()).throw(SystemExit("killed")))
    with pytest.raises(SystemExit):
        run_alerts(con, AS_OF, smtp_server.mailer(), SAME, shop_name=SHOP)
    monkeypatch.setattr(alerts_mod, "_finish", real_finish)
    run_alerts(con, AS_OF, smtp_server.mailer(), SAME, shop_name=SHOP, unconfirmed="assume_sent")
    assert len(smtp_server.messages) == 1
    assert ledger(con)["alerts_pending"] == 0
    assert con.execute("SELECT status, transport FROM ops.alert_deliveries").fetchall() == [("sent", "assumed")]


def test_an_unanswered_digest_goes_out_again_with_the_same_message_id(con, smtp_server):
    slow = start_server(Collector(delay_s=1.5))
    try:
        with pytest.raises(AlertDeliveryError) as err:
            run_alerts(con, AS_OF, slow.mailer(timeout_s=0.5), SAME, shop_name=SHOP)
        assert err.value.maybe_delivered and "may have accepted" in str(err.value)
        stored_id, status = con.execute("SELECT message_id, status FROM ops.alert_deliveries").fetchone()
        assert status == "sending"
    finally:
        slow.controller.stop()
    run_alerts(con, AS_OF, smtp_server.mailer(), SAME, shop_name=SHOP)
    assert [m["message"]["Message-ID"] for m in smtp_server.messages] == [stored_id]
    assert ledger(con)["alerts_pending"] == 0


def test_outbox_mode_writes_each_digest_once(con, tmp_path):
    add_anomalies(con)
    outbox = tmp_path / "exports" / "outbox"
    mailer = Mailer(SmtpSettings(sender="alerts@shop.example"), outbox)
    result = run_alerts(con, AS_OF, mailer, SAME, shop_name=SHOP)
    assert result.metadata()["transport"] == "outbox"
    files = list(outbox.glob("*.eml"))
    assert len(files) == 1
    with open(files[0], "rb") as fh:
        msg = BytesParser(policy=email_policy.default).parse(fh)
    assert OWNER in msg["To"] and msg["Subject"].startswith(f"[SalesFlow] {SHOP}: ")
    assert any(p.get_content_type() == "image/png" for p in msg.walk())
    run_alerts(con, AS_OF, mailer, SAME, shop_name=SHOP)
    assert len(list(outbox.glob("*.eml"))) == 1
    assert con.execute("SELECT DISTINCT transport FROM ops.alert_deliveries").fetchall() == [("outbox",)]


def test_pending_payload_keeps_what_the_digest_needs(con):
    add_anomalies(con)
    alerts_mod.record_pending(con, build_alerts(con, AS_OF), SAME)
    pending = {p.key: p for p in pending_alerts(con)}
    total = pending["anomaly:TOTAL:2025-06-28:down"]
    assert total.payload["expected"] == 130.0 and total.payload["lower"] == 95.0
    assert total.value == Decimal("-90.00") and total.payload["statement"].startswith("Shop revenue on")
    assert total.recipients == SAME.for_alert("anomaly")
    built = next(a for a in build_alerts(con, AS_OF) if a.key == total.key)
    stored = json.loads(con.execute("SELECT payload FROM ops.alerts_pending WHERE alert_key = ?",
                                    [total.key]).fetchone()[0])
    assert stored["severity"] == built.severity and stored["value"] == "-90.00"


def test_a_report_is_mailed_once(con, smtp_server, tmp_path):
    files = write_report(con, "daily", AS_OF, tmp_path, SETTINGS, now=NOW)
    mailer = smtp_server.mailer()
    delivery = send_report_once(con, mailer, files, ["owner@shop.example"])
    assert delivery is not None and delivery.transport == "smtp"
    assert send_report_once(con, mailer, files, ["owner@shop.example"]) is None
    assert send_report_once(con, mailer, files, []) is None
    assert len(smtp_server.messages) == 1
    msg = smtp_server.messages[0]["message"]
    assert smtp_server.messages[0]["rcpt_tos"] == ["owner@shop.example"]
    assert msg["Subject"] == f"{SETTINGS.shop_name}: daily report Monday 30 June 2025"
    assert {p.get_filename(): p.get_content() for p in msg.iter_attachments()} == {
        files.pdf.name: files.pdf.read_bytes(), files.xlsx.name: files.xlsx.read_bytes()}
    assert con.execute("SELECT alert_key FROM ops.alerts_sent").fetchall() == [("report:daily:2025-06-30",)]
    down = Mailer(SmtpSettings(host="127.0.0.1", port=free_port(), security="none",
                               sender="alerts@shop.example", timeout_s=2))
    weekly = write_report(con, "weekly", AS_OF, tmp_path, SETTINGS, now=NOW)
    with pytest.raises(MailDeliveryError):
        send_report_once(con, down, weekly, ["owner@shop.example"])
    assert send_report_once(con, mailer, weekly, ["owner@shop.example"]) is not None
    assert len(smtp_server.messages) == 2
