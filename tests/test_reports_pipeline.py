"""Reports and alert e-mails through Dagster: the daily run writes the files, e-mails them to
a real SMTP server on loopback once, and a rerun sends nothing; a failed run e-mails ops."""

from __future__ import annotations

import dagster as dg
import duckdb
import pytest

from emulator.clock import FixedClock
from emulator.testing import running_emulator
from pipelines.runner import run_daily
from resources import MailerResource
from tests.conftest import CORE_NOW, SHOP_END, pipeline_resources
from tests.test_mailer import start_server


@pytest.fixture
def smtp():
    server = start_server()
    try:
        yield server
    finally:
        server.controller.stop()


def mailer_for(smtp, **overrides) -> MailerResource:
    options = dict(host="127.0.0.1", port=str(smtp.port), security="none",
                   sender="SalesFlow <reports@shop.example>", report_recipients="owner@shop.example",
                   alert_recipients="manager@shop.example", ops_recipients="ops@shop.example")
    options.update(overrides)
    return MailerResource(**options)


def test_daily_run_writes_reports_and_mails_them_once(tmp_path, core_state, smtp, monkeypatch):
    for name in ("SALESFLOW_REPORT_RECIPIENTS_DAILY", "SALESFLOW_ALERT_RECIPIENTS_STOCK"):
        monkeypatch.delenv(name, raising=False)
    warehouse = tmp_path / "w.duckdb"
    with running_emulator(core_state, clock=FixedClock(CORE_NOW)) as emu, \
            dg.DagsterInstance.ephemeral() as instance:
        resources = {**pipeline_resources(emu, warehouse), "mailer": mailer_for(smtp)}
        first = run_daily(as_of=SHOP_END, instance=instance, warehouse_path=warehouse, resources=resources)
        assert first.success, first.summary()
        sent_first = len(smtp.messages)
        again = run_daily(as_of=SHOP_END, instance=instance, warehouse_path=warehouse, resources=resources)
        assert again.success, again.summary()
    day = tmp_path / "exports" / "reports" / "daily" / str(SHOP_END)
    assert (day / f"salesflow-daily-{SHOP_END}.pdf").stat().st_size > 5_000
    assert (day / f"salesflow-daily-{SHOP_END}.xlsx").stat().st_size > 5_000
    # the run for 30 June (a Monday) also writes the latest complete week and month
    assert list((tmp_path / "exports" / "reports" / "weekly").glob("*/salesflow-weekly-*.pdf"))
    assert list((tmp_path / "exports" / "reports" / "monthly").glob("*/salesflow-monthly-*.pdf"))
    subjects = [m["message"]["Subject"] for m in smtp.messages]
    reports = [m for m in smtp.messages if m["rcpt_tos"] == ["owner@shop.example"]]
    assert len(reports) == 3, subjects  # daily, weekly, monthly
    daily = next(m for m in reports if "daily" in m["message"]["Subject"].lower())
    names = {part.get_filename() for part in daily["message"].iter_attachments()}
    assert {f"salesflow-daily-{SHOP_END}.pdf", f"salesflow-daily-{SHOP_END}.xlsx"} <= names
    # a second run of the same day sends nothing more
    assert len(smtp.messages) == sent_first
    con = duckdb.connect(str(warehouse), read_only=True)
    ledger = con.execute("SELECT count(*) FROM ops.alerts_sent WHERE alert_key LIKE 'report:%'").fetchone()[0]
    con.close()
    assert ledger == 3


def test_smtp_down_fails_the_run_and_the_next_run_sends_once(tmp_path, core_state, smtp):
    warehouse = tmp_path / "w.duckdb"
    with running_emulator(core_state, clock=FixedClock(CORE_NOW)) as emu, \
            dg.DagsterInstance.ephemeral() as instance:
        base = pipeline_resources(emu, warehouse)
        down = {**base, "mailer": mailer_for(smtp, port="1")}  # nothing listens on port 1
        failed = run_daily(as_of=SHOP_END, instance=instance, warehouse_path=warehouse, resources=down,
                           reports=False)
        assert not failed.success
        assert any("report" in f or "alert" in f for f in failed.failures), failed.failures
        assert smtp.messages == []
        con = duckdb.connect(str(warehouse), read_only=True)
        pending = con.execute("SELECT count(*) FROM ops.alerts_pending").fetchone()[0]
        con.close()
        assert pending > 0, "the shop has stock alerts: they must wait as pending"
        ok = run_daily(as_of=SHOP_END, instance=instance, warehouse_path=warehouse,
                       resources={**base, "mailer": mailer_for(smtp)}, reports=False)
        assert ok.success, ok.summary()
        after_first = len(smtp.messages)
        assert after_first >= 1
        ok = run_daily(as_of=SHOP_END, instance=instance, warehouse_path=warehouse,
                       resources={**base, "mailer": mailer_for(smtp)}, reports=False)
        assert ok.success and len(smtp.messages) == after_first
    con = duckdb.connect(str(warehouse), read_only=True)
    assert con.execute("SELECT count(*) FROM ops.alerts_pending").fetchone()[0] == 0
    sent_alerts = con.execute("SELECT count(*) FROM ops.alerts_sent WHERE alert_key NOT LIKE 'report:%'").fetchone()[0]
    con.close()
    assert sent_alerts == pending


def test_without_smtp_messages_land_in_the_outbox(tmp_path, core_state):
    warehouse = tmp_path / "w.duckdb"
    with running_emulator(core_state, clock=FixedClock(CORE_NOW)) as emu, \
            dg.DagsterInstance.ephemeral() as instance:
        mailer = MailerResource(report_recipients="owner@shop.example", alert_recipients="owner@shop.example")
        result = run_daily(as_of=SHOP_END, instance=instance, warehouse_path=warehouse,
                           resources={**pipeline_resources(emu, warehouse), "mailer": mailer}, reports=False)
        assert result.success, result.summary()
    outbox = list((tmp_path / "exports" / "outbox").glob("*.eml"))
    assert outbox, "no .eml written"
    from email import message_from_bytes, policy

    msgs = [message_from_bytes(p.read_bytes(), policy=policy.default) for p in outbox]
    assert any(m["To"] == "owner@shop.example" and "daily" in m["Subject"].lower() for m in msgs)


def test_a_failed_run_mails_ops_with_a_link_to_the_run(tmp_path, smtp):
    from tests.test_notices import fail_a_run_and_sense_it

    result = fail_a_run_and_sense_it(tmp_path, mailer_for(smtp, password="", user=""))
    assert not result.success
    assert len(smtp.messages) == 1
    msg = smtp.messages[0]
    assert msg["rcpt_tos"] == ["ops@shop.example"]
    assert "failing_job" in msg["message"]["Subject"]
    assert result.run_id in msg["message"].get_body(("plain",)).get_content()
