"""Today, as it happens: marts.today against the same weekday last week up to the same time,
today's figures marked provisional until the daily run closes the day, `salesflow materialize
--today`, and an intraday run that queues on the warehouse pool behind a long backfill."""

from __future__ import annotations

import shutil
import threading
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from assets.extract import raw_sales
from assets.marts import daily_marts
from emulator.clock import FixedClock
from emulator.testing import running_emulator
from pipelines.runner import run_daily, run_today
from salesflow.core_client import CoreClient
from salesflow.intraday import change_pct, refresh_today
from salesflow.warehouse import connect
from tests.conftest import CORE_NOW, SHOP_END, pipeline_resources

ROOT = Path(__file__).resolve().parent.parent
TODAY = date(2025, 7, 1)  # a Tuesday
LAST_WEEK = date(2025, 6, 24)  # the Tuesday before


def _sell_at(emu, when: datetime, sku: str, quantity: int) -> None:
    emu.clock.set(when)
    with CoreClient(emu.url, *emu.admin) as client:
        client.post_json("/sales", {"items": [{"sku": sku, "quantity": quantity}]})


def _last_week(con, rows: list[tuple[int, str, int, str]]) -> None:
    """Sales of last Tuesday in raw.*: (id, time of day, units, unit price)."""
    for sale_id, clock, units, price in rows:
        ts = datetime.fromisoformat(f"{LAST_WEEK}T{clock}")
        total = Decimal(price) * units
        con.execute("INSERT INTO raw.sales VALUES (?, ?, ?, ?, NULL, ?)", [sale_id, ts, LAST_WEEK, total, ts])
        con.execute("INSERT INTO raw.sale_items VALUES (?, 1, 1, 'BAK-00001', 'Muffin', ?, ?, ?)",
                    [sale_id, units, Decimal(price), total])


def test_today_so_far_against_last_week_up_to_the_same_time_then_the_daily_run_closes_it(
        tmp_path, core_state):
    warehouse = tmp_path / "w.duckdb"
    with running_emulator(core_state, clock=FixedClock(datetime(2025, 7, 1, 9, 0))) as emu:
        _sell_at(emu, datetime(2025, 7, 1, 9, 0), "BAK-00001", 1)   # 2.09
        _sell_at(emu, datetime(2025, 7, 1, 11, 30), "BEV-00001", 2)  # 3.78
        emu.clock.set(datetime(2025, 7, 1, 14, 0))
        with connect(warehouse) as con:
            from salesflow.warehouse import ensure_schema

            ensure_schema(con)
            # up to 14:00 last Tuesday: 3 sales, 4 units, 16.50; after it: two more
            _last_week(con, [(900001, "08:00:00", 2, "5.00"), (900002, "13:59:59", 1, "5.00"),
                             (900003, "14:00:00", 1, "1.50"), (900004, "14:00:01", 1, "100.00"),
                             (900005, "20:00:00", 3, "10.00")])
            with CoreClient(emu.url, *emu.admin) as client:
                result = refresh_today(client, con, workdir=tmp_path)
            assert result.reconciled and result.day == TODAY
            row = con.execute(
                """SELECT day, as_of_ts, orders, units, revenue, avg_order_value, last_sale_ts,
                          compare_day, compare_orders, compare_units, compare_revenue,
                          revenue_change_pct, orders_change_pct, provisional FROM marts.today""").fetchall()
            assert row == [(TODAY, datetime(2025, 7, 1, 14, 0), 2, 3, Decimal("5.87"), Decimal("2.94"),
                            datetime(2025, 7, 1, 11, 30), LAST_WEEK, 3, 4, Decimal("16.50"),
                            Decimal("-64.42"), Decimal("-33.33"), True)]
            assert con.execute("SELECT orders, revenue, provisional FROM marts.daily_sales "
                               "WHERE sale_date = ?", [TODAY]).fetchall() == [(2, Decimal("5.87"), True)]
            assert set(con.execute("SELECT provisional FROM marts.product_daily_sales WHERE sale_date = ?",
                                   [TODAY]).fetchall()) == {(True,)}

        # after midnight the daily run (extract + daily marts for the day) closes it
        _sell_at(emu, datetime(2025, 7, 1, 22, 0), "BAK-00001", 1)
        emu.clock.set(datetime(2025, 7, 2, 6, 0))
        closed = dg.materialize([raw_sales, daily_marts], partition_key=TODAY.isoformat(),
                                resources=pipeline_resources(emu, warehouse))
        assert closed.success
        with connect(warehouse, read_only=True) as con:
            assert con.execute("SELECT orders, revenue, provisional FROM marts.daily_sales "
                               "WHERE sale_date = ?", [TODAY]).fetchall() == [(3, Decimal("7.96"), False)]
            assert set(con.execute("SELECT provisional FROM marts.product_daily_sales WHERE sale_date = ?",
                                   [TODAY]).fetchall()) == {(False,)}

        # the next refresh is for the new day: marts.today holds that day only
        with connect(warehouse) as con, CoreClient(emu.url, *emu.admin) as client:
            refresh_today(client, con, workdir=tmp_path)
            assert con.execute("SELECT day, orders, revenue_change_pct, provisional FROM marts.today"
                               ).fetchall() == [(date(2025, 7, 2), 0, None, True)]
            # the closed day stays closed
            assert con.execute("SELECT provisional FROM marts.daily_sales WHERE sale_date = ?",
                               [TODAY]).fetchone() == (False,)


def test_a_change_against_nothing_is_not_a_percentage():
    assert change_pct(Decimal("5.87"), Decimal("16.50")) == Decimal("-64.42")
    assert change_pct(10, 0) is None
    assert change_pct(0, 0) is None
    assert change_pct(Decimal("3"), Decimal("2")) == Decimal("50.00")


def test_reading_today_so_far_never_writes_the_warehouse(tmp_path):
    from salesflow.intraday import read_today

    path = tmp_path / "w.duckdb"
    duckdb.connect(str(path)).close()  # a warehouse no refresh has written yet
    with connect(path, read_only=True) as con:
        assert read_today(con) is None


def test_materialize_today_prints_today_so_far_and_fails_when_the_core_refuses(
        tmp_path, core_state, monkeypatch, capsys):
    from pipelines.cli import main

    monkeypatch.chdir(tmp_path)
    warehouse = tmp_path / "w.duckdb"
    with running_emulator(core_state, clock=FixedClock(datetime(2025, 7, 1, 10, 0))) as emu:
        _sell_at(emu, datetime(2025, 7, 1, 10, 0), "BAK-00001", 2)
        monkeypatch.setenv("SALESFLOW_CORE_URL", emu.url)
        monkeypatch.setenv("SALESFLOW_CORE_PHONE", emu.admin[0])
        monkeypatch.setenv("SALESFLOW_CORE_PASSWORD", emu.admin[1])
        monkeypatch.setenv("SALESFLOW_WAREHOUSE", str(warehouse))
        monkeypatch.setenv("SALESFLOW_HOME", str(tmp_path))
        monkeypatch.delenv("DAGSTER_HOME", raising=False)
        assert main(["materialize", "--today"]) == 0
        out = capsys.readouterr().out
        assert "succeeded" in out
        assert "today 2025-07-01 up to 10:00: 1 orders, 2 units, 4.18 EUR" in out
        assert "same time last Tuesday (2025-06-24)" in out
        assert main(["materialize", "--today", "--as-of", "2025-06-30"]) == 2
        # a core that refuses the account: the refresh fails, and says so
        monkeypatch.setenv("SALESFLOW_CORE_PASSWORD", "not-the-password")
        assert main(["materialize", "--today"]) == 1
        out = capsys.readouterr().out
        assert "FAILED" in out and "refused" in out


def test_with_a_backfill_running_the_intraday_run_waits_for_the_warehouse_pool(tmp_path, core_state):
    from resources import WAREHOUSE_POOL

    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    warehouse = tmp_path / "w.duckdb"
    with running_emulator(core_state, clock=FixedClock(CORE_NOW)) as emu, \
            dg.DagsterInstance.from_config(str(home)) as instance:
        resources = pipeline_resources(emu, warehouse)
        # the backfill's read of the full listing is held 12 s while its step holds the pool (long
        # enough for the intraday run to start and wait on a loaded machine)
        arrived = threading.Event()
        held = emu.app.state.faults.plan(None, method="GET", path="/sales", hold_s=12.0,
                                         on_received=arrived.set)
        backfill: list = []
        worker = threading.Thread(target=lambda: backfill.append(run_daily(
            as_of=SHOP_END, instance=instance, warehouse_path=warehouse, resources=resources,
            reports=False)))
        worker.start()
        try:
            assert arrived.wait(120), "the backfill never read the sales listing"
            assert instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).claimed_slots
            today = run_today(instance=instance, warehouse_path=warehouse, resources=resources)
        finally:
            worker.join(600)
        assert held.requests == [("GET", "/api/v1/sales")]
        (summary,) = backfill
        assert summary.success, summary.summary()
        assert today.success, today.summary()
        blocked = [e for e in instance.all_logs(today.run_id)
                   if e.dagster_event and "blocked by limit for pool" in (e.dagster_event.message or "")]
        assert blocked, "the intraday step did not wait for the warehouse pool"
        assert f"pool {WAREHOUSE_POOL}" in blocked[0].dagster_event.message
        # the intraday step started only once the backfill's sales step had let go of the slot
        def first(run_id, event_type, step=None):
            return min(e.timestamp for e in instance.all_logs(run_id, of_type=event_type)
                       if step is None or e.step_key == step)
        sales_done = first(summary.run_id, dg.DagsterEventType.STEP_SUCCESS, "raw_sales")
        assert first(today.run_id, dg.DagsterEventType.STEP_START) >= sales_done
    with connect(warehouse, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM marts.today").fetchone()[0] == 1
        assert con.execute("SELECT max(sale_date) FROM marts.daily_sales WHERE NOT provisional"
                           ).fetchone()[0] == SHOP_END


def test_today_runs_only_in_its_own_job_never_in_the_daily_one():
    from pipelines.definitions import defs

    def keys(job: str) -> set[str]:
        return {k.to_user_string() for k in defs.resolve_job_def(job).asset_layer.selected_asset_keys}

    assert keys("intraday_job") == {"raw/sales_today", "marts/today"}
    assert not keys("daily_job") & keys("intraday_job")
    assert "marts/daily_sales" in keys("daily_job")


# -- the optional outage alert ------------------------------------------------------------------
OUTAGE_NOW = datetime(2025, 7, 1, 15, 0)  # a Tuesday afternoon


def _history_for_outage(con, per_week: int = 6) -> None:
    """``per_week`` sales from 13:05 and from 17:05, 18 minutes apart, on each of the last four
    Tuesdays, and today's last sale at 12:30."""
    from salesflow.warehouse import ensure_schema

    ensure_schema(con)
    sale_id = 1
    for week in range(1, 5):
        day = OUTAGE_NOW.date().toordinal() - 7 * week
        for hour in (13, 17):
            for k in range(per_week):
                ts = datetime.fromordinal(day).replace(hour=hour) + timedelta(minutes=5 + k * 18)
                con.execute("INSERT INTO raw.sales VALUES (?, ?, ?, 1.00, NULL, ?)",
                            [sale_id, ts, ts.date(), ts])
                sale_id += 1
    con.execute("INSERT INTO raw.sales VALUES (?, ?, ?, 1.00, NULL, ?)",
                [sale_id, datetime(2025, 7, 1, 12, 30), date(2025, 7, 1), OUTAGE_NOW])


def test_the_outage_alert_is_told_once_per_gap_when_enough_sales_were_expected(tmp_path):
    from email import message_from_bytes, policy

    from salesflow.intraday import alert_outage_once, outage_verdict
    from salesflow.mailer import Mailer, SmtpSettings
    from tests.browser import assert_reads_on_phone

    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    _history_for_outage(con)
    verdict = outage_verdict(con, OUTAGE_NOW, hours=2, min_expected=5)
    assert verdict.alert and verdict.expected == 6
    assert verdict.headline() == "No sale for 2 hours on a Tuesday: 6 were expected between 13:00 and 15:00"
    outbox = tmp_path / "outbox"
    mailer = Mailer(SmtpSettings.from_env({"SALESFLOW_SMTP_SENDER": "SalesFlow <alerts@shop.example>"}),
                    outbox_dir=outbox)
    to = ("owner@shop.example",)
    assert alert_outage_once(con, mailer, verdict, to, shop_name="Corner Shop") is not None
    # the next refreshes of the same gap tell nobody again
    later = outage_verdict(con, datetime(2025, 7, 1, 15, 10), hours=2, min_expected=5)
    assert later.alert
    assert alert_outage_once(con, mailer, later, to, shop_name="Corner Shop") is None
    (sent,) = outbox.glob("*.eml")
    msg = message_from_bytes(sent.read_bytes(), policy=policy.default)
    assert msg["Subject"] == f"[SalesFlow] {verdict.headline()}"
    assert "12:30" in msg.get_body(("plain",)).get_content()
    assert_reads_on_phone(msg, tmp_path, "outage")
    # sales resume, then stop again: a new gap is a new alert
    con.execute("INSERT INTO raw.sales VALUES (999, ?, ?, 1.00, NULL, ?)",
                [datetime(2025, 7, 1, 16, 0), date(2025, 7, 1), OUTAGE_NOW])
    assert not outage_verdict(con, datetime(2025, 7, 1, 17, 0), hours=2, min_expected=5).alert
    next_gap = outage_verdict(con, datetime(2025, 7, 1, 19, 5), hours=2, min_expected=5)
    assert next_gap.alert
    assert alert_outage_once(con, mailer, next_gap, to, shop_name="Corner Shop") is not None
    assert len(list(outbox.glob("*.eml"))) == 2
    con.close()


def test_no_outage_alert_when_too_few_were_expected_or_when_it_is_off(tmp_path):
    from salesflow.intraday import OutageSettings, outage_verdict
    from sensors.core_sales import decide

    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    _history_for_outage(con, per_week=6)
    few = outage_verdict(con, OUTAGE_NOW, hours=2, min_expected=20)  # the default minimum
    assert not few.alert and "fewer than 20" in few.reason
    con.close()
    # off unless set: the sensor then never asks for an outage run
    assert not OutageSettings.from_env({}).enabled
    assert OutageSettings.from_env({"SALESFLOW_OUTAGE_ALERT_HOURS": "0"}).hours == 0
    with pytest.raises(ValueError, match="SALESFLOW_OUTAGE_MIN_EXPECTED"):
        OutageSettings.from_env({"SALESFLOW_OUTAGE_MIN_EXPECTED": "many"})
    cursor = {"day": "2025-07-01", "sale_id": 7}
    quiet = decide(cursor, "2025-07-01", 7, datetime(2025, 7, 1, 12, 30), OUTAGE_NOW)
    assert quiet[0] == []
    on = decide(cursor, "2025-07-01", 7, datetime(2025, 7, 1, 12, 30), OUTAGE_NOW, outage_after_hours=2)
    again = decide(on[1], "2025-07-01", 7, datetime(2025, 7, 1, 12, 30), OUTAGE_NOW, outage_after_hours=2)
    # one run per hour of the gap: the same run key at every tick of that hour (Dagster starts
    # it once)
    assert [r.run_key for r in on[0]] == [r.run_key for r in again[0]] == ["outage:7:2"]
    assert decide(cursor, "2025-07-01", 7, datetime(2025, 7, 1, 14, 0), OUTAGE_NOW,
                  outage_after_hours=2)[0] == []


def test_a_gap_that_begins_in_quiet_hours_is_told_once_the_busy_hours_pass_without_a_sale(tmp_path):
    """The first look at a gap can find too few sales expected (the hours after the last sale
    are quiet); the gap is looked at again each hour while it lasts, and told once."""
    from email import message_from_bytes, policy

    from salesflow.intraday import alert_outage_once, outage_verdict
    from salesflow.mailer import Mailer, SmtpSettings
    from sensors.core_sales import decide

    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    _history_for_outage(con)  # busy 13:05-14:35 and 17:05-18:35 on Tuesdays; last sale 12:30
    last_sale = datetime(2025, 7, 1, 12, 30)
    outbox = tmp_path / "outbox"
    mailer = Mailer(SmtpSettings.from_env({"SALESFLOW_SMTP_SENDER": "SalesFlow <alerts@shop.example>"}),
                    outbox_dir=outbox)
    cursor = {"day": "2025-07-01", "sale_id": 7}
    started: set[str] = set()
    looks = []
    for clock in ("14:30", "15:00", "16:30", "18:40", "18:50", "19:40"):
        now = datetime.fromisoformat(f"2025-07-01T{clock}")
        requests, cursor, _ = decide(cursor, "2025-07-01", 7, last_sale, now, outage_after_hours=2)
        for request in requests:
            if request.run_key in started:  # Dagster starts a run key once
                continue
            started.add(request.run_key)
            verdict = outage_verdict(con, now, hours=2, min_expected=6)
            told = alert_outage_once(con, mailer, verdict, ("owner@shop.example",),
                                     shop_name="Corner Shop") is not None
            looks.append((clock, verdict.alert, told))
    con.close()
    # 14:30: 5 expected from 12:30, too few; 16:30: 1; 18:40: the evening's 6 did not come
    assert looks == [("14:30", False, False), ("16:30", False, False), ("18:40", True, True),
                     ("19:40", False, False)]
    (sent,) = outbox.glob("*.eml")
    msg = message_from_bytes(sent.read_bytes(), policy=policy.default)
    # the hours since the last sale, not the two the window covers
    assert msg["Subject"] == "[SalesFlow] No sale for 6 hours on a Tuesday: 6 were expected between 16:40 and 18:40"
    text = msg.get_body(("plain",)).get_content()
    assert "Last sale: Tuesday 1 July 2025, 12:30" in text and "Expected from 16:40 to 18:40: 6" in text


def test_an_intraday_run_tells_an_outage_once_when_the_alert_is_on(tmp_path, core_state, monkeypatch):
    from pipelines.definitions import defs
    from resources import MailerResource

    warehouse = tmp_path / "w.duckdb"
    with connect(warehouse) as con:
        _history_for_outage(con)
    monkeypatch.setenv("SALESFLOW_OUTAGE_ALERT_HOURS", "2")
    monkeypatch.setenv("SALESFLOW_OUTAGE_MIN_EXPECTED", "5")
    outbox = tmp_path / "outbox"
    with running_emulator(core_state, clock=FixedClock(OUTAGE_NOW)) as emu:
        _sell_at(emu, datetime(2025, 7, 1, 12, 30), "BAK-00001", 1)  # the core's last sale today
        emu.clock.set(OUTAGE_NOW)
        resources = {**pipeline_resources(emu, warehouse), "mailer": MailerResource(
            sender="SalesFlow <alerts@shop.example>", alert_recipients="owner@shop.example",
            outbox_dir=str(outbox))}
        job = defs.resolve_job_def("intraday_job")
        first = job.execute_in_process(resources=resources)
        second = job.execute_in_process(resources=resources)
    assert first.success and second.success
    (sent,) = outbox.glob("*.eml")
    body = sent.read_bytes()
    assert b"No sale for 2 hours on a Tuesday: 6 were expected between 13:00 and 15:00" in body
    assert b"Last sale: Tuesday 1 July 2025, 12:30" in body
    told = [m.metadata["outage_email"].value for r in (first, second)
            for m in r.asset_materializations_for_node("today_so_far")
            if m.asset_key == dg.AssetKey(["marts", "today"])]
    assert told == ["outbox to 1 recipient(s)", "already told for this gap"]
