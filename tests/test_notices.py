"""Import results and run failures as ops read them: once per import, the problems named by row
and column, nothing remote, and the import unharmed when the mail server is down."""

from __future__ import annotations

import json
import re
from email import policy as email_policy
from email.parser import BytesParser
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from pipelines.imports_job import IMPORT_OP, import_job
from resources import CoreApiResource, FoldersResource, MailerResource, WarehouseResource
from salesflow.imports.pipeline import ImportOutcome
from salesflow.imports.validation import Issue
from salesflow.mailer import Mailer, Recipients, SmtpSettings
from salesflow.notices import (import_recipients, import_result_message, notify_import,
                               run_failure_message)
from tests.browser import assert_reads_on_phone
from tests.imports.fixtures import ImportEnv, env  # noqa: F401
from tests.test_imports_dagster import Ticker
from tests.test_mailer import free_port

OPS = "ops@shop.example"
SENDER = "SalesFlow <ops@shop.example>"
SHOP = "Müller & Söhne <Épicerie>"
URL = re.compile(r"https?://", re.I)


def _read(path: Path):
    with open(path, "rb") as fh:
        return BytesParser(policy=email_policy.default).parse(fh)


def _outbox(home: Path) -> list:
    folder = home / "exports" / "outbox"
    return [_read(p) for p in sorted(folder.glob("*.eml"))] if folder.exists() else []


def _text(msg) -> str:
    return msg.get_body(("plain",)).get_content()


def _html(msg) -> str:
    return msg.get_body(("html",)).get_content()


def _resources(env: ImportEnv, mailer: MailerResource) -> dict:
    return {
        "core": CoreApiResource(base_url=env.emu.url, phone=env.emu.admin[0], password=env.emu.admin[1],
                                backoff_s=0.01, backoff_max_s=0.05, max_attempts=3),
        "warehouse": WarehouseResource(database=str(env.warehouse)),
        "folders": FoldersResource(home=str(env.home)),
        "mailer": mailer,
    }


def _run(env: ImportEnv, request: dg.RunRequest, mailer: MailerResource, instance) -> dict:
    result = import_job.execute_in_process(run_config=request.run_config, tags=request.tags,
                                           instance=instance, resources=_resources(env, mailer))
    assert result.success
    return result.output_for_node(IMPORT_OP)


def _drop_and_request(env: ImportEnv, ticker: Ticker, files: dict[str, str]) -> list[dg.RunRequest]:
    for name, text in files.items():
        env.drop(name, text.encode())
    ticker.tick()
    requests = ticker.tick()
    assert len(requests) == len(files)
    return requests


# -- through the sensor and the job ----------------------------------------------------------
def test_each_import_result_is_mailed_once_across_sensor_ticks_and_reruns(env):
    a = sorted(env.products().values(), key=lambda p: p["sku"])[0]
    mailer = MailerResource(ops_recipients=OPS, sender=SENDER)
    with dg.DagsterInstance.ephemeral() as instance:
        ticker = Ticker(env.home, instance=instance)
        ticker.tick()
        requests = _drop_and_request(env, ticker, {
            "stock_counts_june.csv": f"sku,counted\r\n{a['sku']},{a['stockQuantity'] + 4}\r\n",
            "stock_counts_bad.csv": f"sku,counted\r\n{a['sku']},3\r\nNOPE,1\r\n",
        })
        outcomes = {}
        for request in requests:
            out = _run(env, request, mailer, instance)
            outcomes[out["file"]] = (out, request)
        assert ticker.tick() == [] and ticker.tick() == []
        # the same runs again (a re-execution): the files are gone, nothing new to tell
        for _out, request in outcomes.values():
            assert _run(env, request, mailer, instance)["status"] == "missing"
    mails = _outbox(env.home)
    assert len(mails) == 2
    by_subject = {("rejected" if "rejected" in m["Subject"] else "committed"): m for m in mails}
    good, bad = by_subject["committed"], by_subject["rejected"]
    assert good["To"] == OPS and good["Subject"].strip() == "[SalesFlow] SalesFlow shop: import committed: stock_counts_june.csv (1 row)"
    assert "subject=unsubscribe%3A%20%5BSalesFlow%5D%20SalesFlow" in good["List-Unsubscribe"]
    assert re.search(r"Rows committed:\s+1\n", _text(good))
    assert "stock_counts_bad.csv" in bad["Subject"]
    # the rejection names the row and the column, in both parts
    assert re.search(r"row 3, column A \(sku\): unknown sku 'NOPE'", _text(bad))
    html = _html(bad)
    assert re.search(r"<td[^>]*>3</td>\s*<td[^>]*><bdi>A \(sku\)</bdi></td>", html)
    assert "unknown sku &#39;NOPE&#39;" in html or "unknown sku 'NOPE'" in html
    report = Path(outcomes["stock_counts_bad.csv"][0]["report"])
    attached = {p.get_filename(): p.get_content() for p in bad.iter_attachments()}
    assert attached == {report.name: report.read_bytes()}
    assert env.products()[a["sku"]]["stockQuantity"] == a["stockQuantity"] + 4
    con = duckdb.connect(str(env.warehouse), read_only=True)
    try:
        sent = sorted(k for (k,) in con.execute("SELECT alert_key FROM ops.alerts_sent").fetchall())
    finally:
        con.close()
    assert len(sent) == 2 and sent[0].startswith("import:committed:") and sent[1].startswith("import:rejected:")


def test_with_the_mail_server_down_the_import_commits_and_the_next_import_run_sends_the_notice(env):
    products = sorted(env.products().values(), key=lambda p: p["sku"])
    a, b = products[0], products[1]
    down = MailerResource(host="127.0.0.1", port=str(free_port()), security="none",
                          sender=SENDER, ops_recipients=OPS)
    up = MailerResource(ops_recipients=OPS, sender=SENDER)  # the outbox
    with dg.DagsterInstance.ephemeral() as instance:
        ticker = Ticker(env.home, instance=instance)
        ticker.tick()
        [first] = _drop_and_request(env, ticker, {
            "stock_counts_a.csv": f"sku,counted\r\n{a['sku']},{a['stockQuantity'] + 2}\r\n"})
        result = import_job.execute_in_process(run_config=first.run_config, tags=first.tags,
                                               instance=instance, resources=_resources(env, down))
        assert result.success and result.output_for_node(IMPORT_OP)["status"] == "committed"
        [mat] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
        notice = mat.event_specific_data.metadata["notice"].value
        assert "queued" in notice and "mail not delivered" in notice
        assert env.products()[a["sku"]]["stockQuantity"] == a["stockQuantity"] + 2
        assert _outbox(env.home) == []
        con = duckdb.connect(str(env.warehouse), read_only=True)
        try:
            [(status, message_id)] = con.execute(
                "SELECT status, message_id FROM ops.alert_deliveries").fetchall()
        finally:
            con.close()
        assert status == "queued"

        [second] = _drop_and_request(env, ticker, {
            "stock_counts_b.csv": f"sku,counted\r\n{b['sku']},{b['stockQuantity'] + 1}\r\n"})
        _run(env, second, up, instance)
        [third] = _drop_and_request(env, ticker, {"stock_counts_bad.csv": "sku,counted\r\nNOPE,1\r\n"})
        _run(env, third, up, instance)
    mails = _outbox(env.home)
    assert len(mails) == 3  # the queued one, then one per later import: never twice
    assert [m["Message-ID"].strip() for m in mails].count(message_id) == 1
    files = sorted(f for m in mails for f in ("stock_counts_a.csv", "stock_counts_b.csv",
                                              "stock_counts_bad.csv") if f in m["Subject"])
    assert files == ["stock_counts_a.csv", "stock_counts_b.csv", "stock_counts_bad.csv"]


# -- the messages ----------------------------------------------------------------------------
def _rejection(tmp_path: Path, issues: int = 17) -> ImportOutcome:
    moved = tmp_path / "rejected" / "20250630T101010Z_abcdef12_stock_counts_bad.csv"
    moved.parent.mkdir(parents=True, exist_ok=True)
    moved.write_text("sku,counted\n")
    report = moved.with_name(moved.name + ".errors.xlsx")
    report.write_bytes(b"PK\x03\x04 workbook")
    return ImportOutcome(
        "rejected", "stock_counts_bad.csv", sha256="ab" * 32, kind="stock_counts", rows_total=40,
        rows_valid=25, rows_rejected=15,
        message=f"15 of 40 rows have problems ({issues} in all): nothing was committed",
        issues=[Issue(i + 2, "counted", f"'{-i}' is not a whole number of at least 0", str(-i), 1)
                for i in range(issues)],
        moved_to=moved, report=report)


def test_a_rejection_lists_the_first_problems_and_attaches_every_one(tmp_path):
    outcome = _rejection(tmp_path)
    msg = import_result_message(outcome, sender=SENDER, recipients=[OPS], shop_name=SHOP)
    assert msg["Subject"] == f"[SalesFlow] {SHOP}: import rejected: stock_counts_bad.csv (17 problems)"
    text, html = _text(msg), _html(msg)
    for part in (text, html):
        assert "Rows committed" in part and "40" in part and "15" in part
        assert "and 7 more" in part  # ten shown of seventeen
    assert "row 2, column B (counted): '0' is not a whole number" in text
    assert "row 11, column B (counted)" in text and "row 12," not in text
    assert html.count("<bdi>B (counted)</bdi>") == 10
    assert {p.get_filename(): p.get_content() for p in msg.iter_attachments()} == {
        outcome.report.name: outcome.report.read_bytes()}
    assert not URL.search(bytes(msg).decode("utf-8", "replace"))
    assert "<Épicerie>" not in html and "&lt;Épicerie&gt;" in html


def test_a_rejection_with_thousands_of_problems_counts_them_with_separators(tmp_path):
    outcome = _rejection(tmp_path, issues=1234)
    msg = import_result_message(outcome, sender=SENDER, recipients=[OPS], shop_name=SHOP)
    assert msg["Subject"].endswith("(1,234 problems)")
    for part in (_text(msg), _html(msg)):
        assert "(10 of 1,234)" in part and "and 1,224 more" in part


def test_committed_and_duplicate_imports_say_what_happened(tmp_path):
    from collections import Counter

    from salesflow.imports.commit import CommitReport

    moved = tmp_path / "processed" / "20250630T101010Z_cdcdcdcd_products.csv"
    committed = ImportOutcome("committed", "products.csv", sha256="cd" * 32, kind="products",
                              rows_total=12, rows_valid=12, rows_rejected=0,
                              message="12 rows committed in 1 batch(es)", moved_to=moved,
                              commit=CommitReport("products", rows_committed=12,
                                                  actions=Counter(created=5, updated=7)))
    msg = import_result_message(committed, sender=SENDER, recipients=[OPS], shop_name="Demo shop")
    assert msg["Subject"] == "[SalesFlow] Demo shop: import committed: products.csv (12 rows)"
    assert re.search(r"Rows committed:\s+12\n", _text(msg))
    assert "created: 5" in _text(msg) and "updated: 7" in _text(msg)
    assert list(msg.iter_attachments()) == []
    duplicate = ImportOutcome("duplicate", "products (1).csv", sha256="cd" * 32, kind="products",
                              message="identical to 'products.csv' committed at 2025-06-30 10:10:10: "
                                      "not imported again",
                              moved_to=tmp_path / "rejected" / "20250701T080000Z_cdcdcdcd_products_1_.csv")
    dup = import_result_message(duplicate, sender=SENDER, recipients=[OPS], shop_name="Demo shop")
    assert dup["Subject"] == "[SalesFlow] Demo shop: import skipped (duplicate): products (1).csv"
    assert "identical to 'products.csv'" in _text(dup) and re.search(r"Rows committed:\s+0\n", _text(dup))
    for m in (msg, dup):
        assert "Kind:                Products (products)" in _text(m)
        assert not URL.search(_text(m) + _html(m))


def _ledger(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(tmp_path / "ledger.duckdb"))


def test_the_ledger_sends_an_import_notice_once_and_nothing_without_recipients(tmp_path):
    con = _ledger(tmp_path)
    mailer = Mailer(SmtpSettings(sender=SENDER), outbox_dir=tmp_path / "outbox")
    outcome = _rejection(tmp_path)
    first = notify_import(con, mailer, outcome, [OPS], shop_name=SHOP)
    assert first.queued and first.sent == [first.key] and first.waiting == 0
    again = notify_import(con, mailer, outcome, [OPS], shop_name=SHOP)
    assert again.already and again.sent == []
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1
    missing = ImportOutcome("missing", "x.csv", message="the file is no longer in the inbox")
    assert notify_import(con, mailer, missing, [OPS], shop_name=SHOP).key is None
    nobody = notify_import(con, mailer, _rejection(tmp_path / "b"), [], shop_name=SHOP)
    assert nobody.key is None and "no import or ops recipients" in nobody.describe()
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1
    assert con.execute("SELECT count(*) FROM ops.alerts_sent").fetchone()[0] == 1


def test_a_notice_queued_without_mail_settings_goes_out_from_the_configured_sender(tmp_path):
    con = _ledger(tmp_path)
    queued = notify_import(con, None, _rejection(tmp_path), [OPS], shop_name=SHOP)
    assert queued.queued and queued.waiting == 0 and queued.error == "no mailer configured"
    mailer = Mailer(SmtpSettings(sender=SENDER), outbox_dir=tmp_path / "outbox")
    later = notify_import(con, mailer, ImportOutcome("missing", "y.csv"), [OPS], shop_name=SHOP)
    assert later.sent == [queued.key] and later.waiting == 0
    [path] = (tmp_path / "outbox").glob("*.eml")
    assert _read(path)["From"] == SENDER


def test_a_notice_whose_delivery_is_unknown_is_resent_with_the_same_message_id(tmp_path):
    con = _ledger(tmp_path)

    class Flaky(Mailer):
        fail = True

        def deliver(self, msg):
            from salesflow.errors import MailDeliveryError

            if Flaky.fail:
                raise MailDeliveryError("connection lost after DATA", maybe_delivered=True)
            return super().deliver(msg)

    mailer = Flaky(SmtpSettings(sender=SENDER), outbox_dir=tmp_path / "outbox")
    result = notify_import(con, mailer, _rejection(tmp_path), [OPS], shop_name=SHOP)
    assert result.error and result.waiting == 1
    [(status, message_id)] = con.execute("SELECT status, message_id FROM ops.alert_deliveries").fetchall()
    assert status == "sending"
    Flaky.fail = False
    later = notify_import(con, mailer, ImportOutcome("missing", "y.csv"), [OPS], shop_name=SHOP)
    assert later.sent == [result.key] and later.waiting == 0
    [path] = (tmp_path / "outbox").glob("*.eml")
    assert _read(path)["Message-ID"].strip() == message_id


def test_import_recipients_default_to_ops_and_have_their_own_setting():
    r = Recipients(ops=(OPS,))
    assert import_recipients(r, {}) == (OPS,)
    assert import_recipients(r, {"SALESFLOW_IMPORT_RECIPIENTS": "clerk@shop.example"}) == ("clerk@shop.example",)
    assert import_recipients(r, {"SALESFLOW_IMPORT_RECIPIENTS": "none"}) == ()


PASSWORD = "s3cr3t-Pa55word"


def _failure(ui_url: str | None):
    return run_failure_message(
        "daily_job", "5f2c9a1e-0000-4000-8000-123456789abc",
        f"CoreApiError: login failed with password={PASSWORD} at https://admin:{PASSWORD}@core:8080\n"
        "Traceback (most recent call last):\n  File \"/srv/" + "deep/" * 40 + "extract.py\", line 12",
        ui_url, sender=SENDER, recipients=[OPS], shop_name="Demo shop", secrets=[PASSWORD])


def test_a_run_failure_masks_secrets_in_both_parts_and_links_the_run():
    msg = _failure("http://127.0.0.1:3000/")
    raw = bytes(msg).decode("utf-8", "replace")
    assert PASSWORD not in raw
    text, html = _text(msg), _html(msg)
    for part in (text, html):
        assert "CoreApiError: login failed with password=***" in part
        assert "5f2c9a1e-0000-4000-8000-123456789abc" in part
        assert "http://127.0.0.1:3000/runs/5f2c9a1e-0000-4000-8000-123456789abc" in part
    # a link to the run in the UI, and nothing the client would load from elsewhere
    assert '<a href="http://127.0.0.1:3000/runs/5f2c9a1e-0000-4000-8000-123456789abc"' in html
    assert not re.search(r"""(?:src|background)\s*=\s*["']?\s*https?:""", html, re.I)
    assert msg["Message-ID"] == "<run-failure.5f2c9a1e-0000-4000-8000-123456789abc@shop.example>"
    # without a UI address the only URL is the one quoted, masked, from the error itself
    bare = _failure(None)
    quoted = re.findall(r"https?://[^\s<]*", _text(bare) + _html(bare) + str(bare["Subject"]))
    assert quoted and set(quoted) == {"https://admin:***@core:8080"}


# -- as they look ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["rejection", "committed", "run_failure"])
def test_notices_read_on_a_phone_and_a_desktop(tmp_path, name):
    from salesflow.imports.commit import CommitReport

    if name == "rejection":
        msg = import_result_message(_rejection(tmp_path), sender=SENDER, recipients=[OPS], shop_name=SHOP)
    elif name == "committed":
        outcome = ImportOutcome("committed", "sales_" + "x" * 120 + ".xlsx", sha256="ef" * 32,
                                kind="sales", rows_total=1200, rows_valid=1200, rows_rejected=0,
                                moved_to=tmp_path / "20250630T101010Z_efefefef_sales.xlsx",
                                commit=CommitReport("sales", rows_committed=1200))
        msg = import_result_message(outcome, sender=SENDER, recipients=[OPS], shop_name=SHOP)
    else:
        msg = _failure("http://127.0.0.1:3000/")
    views = assert_reads_on_phone(msg, tmp_path, name)
    assert [v.width for v in views] == [375, 1024]


def test_the_stored_notice_payload_is_the_message_itself(tmp_path):
    """What goes out later is what was built at import time, attachment included, even when
    the rejected files have been cleaned up since."""
    con = _ledger(tmp_path)
    outcome = _rejection(tmp_path)
    down = Mailer(SmtpSettings(host="127.0.0.1", port=free_port(), security="none", sender=SENDER,
                               timeout_s=2))
    result = notify_import(con, down, outcome, [OPS], shop_name=SHOP)
    assert result.queued and result.sent == [] and result.waiting == 1
    [(keys,)] = con.execute("SELECT alert_keys FROM ops.alert_deliveries WHERE status = 'queued'").fetchall()
    assert json.loads(keys) == [result.key]
    workbook = outcome.report.read_bytes()
    outcome.report.unlink()
    up = Mailer(SmtpSettings(sender=SENDER), outbox_dir=tmp_path / "outbox")
    later = notify_import(con, up, ImportOutcome("missing", "z.csv"), [OPS], shop_name=SHOP)
    assert later.sent == [result.key]
    [path] = (tmp_path / "outbox").glob("*.eml")
    assert {p.get_filename(): p.get_content() for p in _read(path).iter_attachments()} == {
        outcome.report.name: workbook}


def fail_a_run_and_sense_it(tmp_path, mailer: MailerResource) -> dg.ExecuteInProcessResult:
    """Run ``failing_job`` (its op raises with a token in the message) and hand its failure to
    the run-failure sensor, with ``mailer`` and the home folder ``tmp_path``."""
    from sensors.run_failure import run_failure_email

    @dg.op
    def boom():
        raise RuntimeError("core answered 500 for token=abc.def.ghi")

    @dg.job
    def failing_job():
        boom()

    with dg.DagsterInstance.ephemeral() as instance:
        result = failing_job.execute_in_process(instance=instance, raise_on_error=False)
        failure = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
        context = dg.build_run_status_sensor_context(
            sensor_name="run_failure_email", dagster_instance=instance, dagster_run=result.dagster_run,
            dagster_event=failure,
            resources={"mailer": mailer, "folders": FoldersResource(home=str(tmp_path))},
        ).for_run_failure()
        run_failure_email(context)
    return result


def test_the_run_failure_sensor_mails_the_html_notice_with_the_error_masked(tmp_path):
    result = fail_a_run_and_sense_it(tmp_path, MailerResource(ops_recipients=OPS, sender=SENDER))
    [msg] = _outbox(tmp_path)
    assert msg["To"] == OPS and "failing_job" in msg["Subject"]
    for part in (_text(msg), _html(msg)):
        # what the step raised, not only which step failed, with the token masked
        assert result.run_id in part and "boom: RuntimeError: core answered 500 for token=***" in part
        assert "abc.def.ghi" not in part
    assert_reads_on_phone(msg, tmp_path, "sensor-failure")
