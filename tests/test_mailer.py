"""Mail settings, messages and delivery, against a real SMTP server on loopback (aiosmtpd)."""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import ssl
import subprocess
from email import message_from_bytes
from email import policy as email_policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from salesflow.notices import run_failure_message
from salesflow.errors import MailConfigError, MailDeliveryError
from salesflow.mailer import (Attachment, Mailer, Recipients, SmtpSettings, build_message,
                              parse_addresses, redact)

PASSWORD = "s3cret-Pa55word!"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Collector:
    """aiosmtpd handler keeping every accepted message; ``delay_s`` stalls the DATA answer."""

    def __init__(self, delay_s: float = 0.0):
        self.messages: list[dict] = []
        self.delay_s = delay_s

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        self.messages.append({
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "message": message_from_bytes(envelope.original_content, policy=email_policy.default),
            "raw": envelope.original_content,
            "login": getattr(session, "auth_data", None),
        })
        return "250 Message accepted for delivery"


class SmtpServer:
    def __init__(self, handler: Collector, controller: Controller, port: int):
        self.handler = handler
        self.controller = controller
        self.port = port

    @property
    def messages(self) -> list[dict]:
        return self.handler.messages

    def settings(self, **overrides) -> SmtpSettings:
        options = {"host": "127.0.0.1", "port": self.port, "security": "none",
                   "sender": "SalesFlow <reports@shop.example>", "timeout_s": 10}
        options.update(overrides)
        return SmtpSettings(**options)

    def mailer(self, tmp_path: Path | None = None, **overrides) -> Mailer:
        return Mailer(self.settings(**overrides), tmp_path / "outbox" if tmp_path else None)


def start_server(handler: Collector | None = None, **smtp_options) -> SmtpServer:
    handler = handler or Collector()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, **smtp_options)
    controller.start()
    return SmtpServer(handler, controller, port)


@pytest.fixture
def smtp_server():
    server = start_server()
    try:
        yield server
    finally:
        server.controller.stop()


def parsed_attachments(msg) -> dict[str, bytes]:
    return {part.get_filename(): part.get_content() for part in msg.iter_attachments()}


# -- settings and recipients -----------------------------------------------------------------
def test_smtp_settings_from_env_defaults_and_validation():
    s = SmtpSettings.from_env({})
    assert not s.configured and s.security == "starttls" and s.effective_port == 587
    s = SmtpSettings.from_env({"SALESFLOW_SMTP_HOST": "mail.example.com", "SALESFLOW_SMTP_SECURITY": "SSL",
                               "SALESFLOW_SMTP_USER": "apikey", "SALESFLOW_SMTP_PASSWORD": PASSWORD,
                               "SALESFLOW_SMTP_SENDER": "Shop <shop@example.com>",
                               "SALESFLOW_SMTP_TIMEOUT_S": "5"})
    assert (s.host, s.security, s.effective_port, s.user, s.timeout_s) == (
        "mail.example.com", "ssl", 465, "apikey", 5.0)
    assert SmtpSettings(host="h", security="none").effective_port == 25
    assert SmtpSettings(host="h", port=2525).effective_port == 2525
    with pytest.raises(MailConfigError, match="security"):
        SmtpSettings(host="h", security="tls13")
    with pytest.raises(MailConfigError, match="both"):
        SmtpSettings(host="h", user="someone")
    with pytest.raises(MailConfigError, match="both"):
        SmtpSettings(host="h", password=PASSWORD)
    with pytest.raises(MailConfigError, match="sender"):
        SmtpSettings(host="h", sender="not an address")
    with pytest.raises(MailConfigError, match="SALESFLOW_SMTP_PORT"):
        SmtpSettings.from_env({"SALESFLOW_SMTP_PORT": "smtp"})
    with pytest.raises(MailConfigError):
        Mailer(SmtpSettings(), None)


def test_recipients_per_kind_fall_back_to_the_general_list():
    env = {
        "SALESFLOW_REPORT_RECIPIENTS": "owner@shop.example, Manager <manager@shop.example>",
        "SALESFLOW_REPORT_RECIPIENTS_MONTHLY": "accountant@shop.example;owner@shop.example",
        "SALESFLOW_REPORT_RECIPIENTS_WEEKLY": "none",
        "SALESFLOW_ALERT_RECIPIENTS": "owner@shop.example",
        "SALESFLOW_ALERT_RECIPIENTS_STOCK": "stock@shop.example, STOCK@shop.example",
        "SALESFLOW_OPS_RECIPIENTS": "ops@shop.example",
    }
    r = Recipients.from_env(env)
    assert r.for_report("daily") == ("owner@shop.example", "Manager <manager@shop.example>")
    assert r.for_report("weekly") == ()
    assert r.for_report("monthly") == ("accountant@shop.example", "owner@shop.example")
    assert r.for_alert("anomaly") == ("owner@shop.example",)
    assert r.for_alert("stock") == ("stock@shop.example",)
    assert r.ops == ("ops@shop.example",)
    assert Recipients.from_env({}).for_alert("stock") == ()
    with pytest.raises(MailConfigError, match="SALESFLOW_ALERT_RECIPIENTS_ANOMALY"):
        Recipients.from_env({"SALESFLOW_ALERT_RECIPIENTS_ANOMALY": "owner@shop.example, oops"})
    with pytest.raises(ValueError):
        r.for_report("hourly")
    assert parse_addresses(" a@b.example ;; c@d.example\n") == ("a@b.example", "c@d.example")


def test_secrets_stay_out_of_repr_errors_and_logs(caplog):
    s = SmtpSettings(host="127.0.0.1", port=free_port(), security="none", user="shop",
                     password=PASSWORD, sender="shop@shop.example", timeout_s=2)
    m = Mailer(s)
    assert PASSWORD not in repr(s) and PASSWORD not in str(s) and PASSWORD not in repr(m)
    assert "***" in repr(s)
    msg = build_message(sender=s.sender, to=["owner@shop.example"], subject="Hello", text="hi")
    caplog.set_level(logging.DEBUG)
    with pytest.raises(MailDeliveryError) as err:
        m.deliver(msg)
    text = str(err.value)
    assert "127.0.0.1" in text and "connect failed" in text and "ConnectionRefusedError" in text
    assert not err.value.maybe_delivered
    assert PASSWORD not in text and PASSWORD not in repr(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__
    assert PASSWORD not in caplog.text


def test_redact_masks_credentials():
    text = ("login failed for https://shop:hunter22@core.example/api password=abc123 "
            "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.abc token='xyz' and " + PASSWORD)
    out = redact(text, [PASSWORD])
    for secret in ("hunter22", "abc123", "eyJhbGciOiJIUzI1NiJ9", "'xyz'", PASSWORD):
        assert secret not in out, secret
    assert "https://shop:***@core.example/api" in out


# -- delivery --------------------------------------------------------------------------------
def test_message_with_attachments_and_inline_image_over_smtp(smtp_server):
    pdf = b"%PDF-1.4 fake"
    png = b"\x89PNG\r\n\x1a\nfake"
    msg = build_message(
        sender="SalesFlow <reports@shop.example>",
        to=["owner@shop.example", "Manager <manager@shop.example>"],
        subject="Weekly report\n Bcc: injected@evil.example",
        text="Plain body",
        html='<p>Hello</p><img src="cid:chart">',
        attachments=[Attachment("report.pdf", pdf, "application/pdf")],
        inline_images={"chart": png},
    )
    delivery = smtp_server.mailer().deliver(msg)
    assert delivery.transport == "smtp" and delivery.refused == ()
    assert len(smtp_server.messages) == 1
    got = smtp_server.messages[0]
    assert got["mail_from"] == "reports@shop.example"
    assert sorted(got["rcpt_tos"]) == ["manager@shop.example", "owner@shop.example"]
    m = got["message"]
    assert m["Subject"] == "Weekly report Bcc: injected@evil.example"
    assert m["Bcc"] is None
    assert m["Message-ID"] == delivery.message_id
    assert parsed_attachments(m) == {"report.pdf": pdf}
    assert m.get_body(("plain",)).get_content().strip() == "Plain body"
    html_part = m.get_body(("html",))
    cid = html_part.get_content().split('src="cid:')[1].split('"')[0]
    related = [p for p in m.walk() if p.get_content_type() == "image/png"]
    assert len(related) == 1 and related[0]["Content-ID"] == f"<{cid}>"
    assert related[0].get_content() == png


def test_login_with_user_and_password(tmp_path):
    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"shop-user" \
            and auth_data.password == PASSWORD.encode()
        return AuthResult(success=ok, handled=False)

    server = start_server(authenticator=authenticator, auth_require_tls=False)
    try:
        good = server.mailer(user="shop-user", password=PASSWORD)
        good.deliver(build_message(sender=good.sender, to=["o@shop.example"], subject="one", text="x"))
        assert len(server.messages) == 1
        bad = server.mailer(user="shop-user", password="wrong-" + PASSWORD)
        with pytest.raises(MailDeliveryError) as err:
            bad.deliver(build_message(sender=bad.sender, to=["o@shop.example"], subject="two", text="x"))
        assert "login failed" in str(err.value) and not err.value.maybe_delivered
        assert PASSWORD not in str(err.value)
        assert len(server.messages) == 1
    finally:
        server.controller.stop()


@pytest.fixture
def tls_files(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return key, cert


def test_implicit_tls_with_a_private_ca(tls_files):
    key, cert = tls_files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    server = start_server(ssl_context=context)
    try:
        mailer = server.mailer(security="ssl", ca_file=str(cert))
        mailer.deliver(build_message(sender=mailer.sender, to=["o@shop.example"], subject="ssl", text="x"))
        assert [m["message"]["Subject"] for m in server.messages] == ["ssl"]
    finally:
        server.controller.stop()


def test_starttls_verifies_the_server_certificate(tls_files):
    key, cert = tls_files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    server = start_server(tls_context=context, require_starttls=True)
    try:
        trusted = server.mailer(security="starttls", ca_file=str(cert))
        trusted.deliver(build_message(sender=trusted.sender, to=["o@shop.example"], subject="tls", text="x"))
        assert [m["message"]["Subject"] for m in server.messages] == ["tls"]
        untrusted = server.mailer(security="starttls")
        with pytest.raises(MailDeliveryError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
            untrusted.deliver(build_message(sender=untrusted.sender, to=["o@shop.example"],
                                            subject="tls", text="x"))
        assert len(server.messages) == 1
    finally:
        server.controller.stop()


def test_an_unanswered_data_command_is_reported_as_maybe_delivered():
    server = start_server(Collector(delay_s=3))
    try:
        mailer = server.mailer(timeout_s=0.7)
        with pytest.raises(MailDeliveryError) as err:
            mailer.deliver(build_message(sender=mailer.sender, to=["o@shop.example"], subject="slow", text="x"))
        assert err.value.maybe_delivered and "send failed" in str(err.value)
    finally:
        server.controller.stop()


def test_outbox_mode_writes_eml_files_a_mail_program_opens(tmp_path):
    mailer = Mailer(SmtpSettings(sender="shop@shop.example"), tmp_path / "exports" / "outbox")
    assert mailer.transport == "outbox"
    msg = build_message(sender=mailer.sender, to=["owner@shop.example"], subject="Daily report 2025-06-30",
                        text="Body", attachments=[Attachment("r.xlsx", b"PK\x03\x04data",
                                                             "application/vnd.ms-excel")])
    delivery = mailer.deliver(msg)
    assert delivery.transport == "outbox" and delivery.path.suffix == ".eml"
    assert delivery.path.parent == tmp_path / "exports" / "outbox"
    again = mailer.deliver(msg)
    assert again.path == delivery.path
    assert [p.name for p in delivery.path.parent.iterdir()] == [delivery.path.name]
    with open(delivery.path, "rb") as fh:
        parsed = BytesParser(policy=email_policy.default).parse(fh)
    assert parsed["Subject"] == "Daily report 2025-06-30"
    assert parsed["To"] == "owner@shop.example"
    assert parsed_attachments(parsed) == {"r.xlsx": b"PK\x03\x04data"}


def test_run_failure_message_masks_secrets_and_links_the_run(smtp_server):
    msg = run_failure_message(
        "daily_job", "5f2c9a1e-0000-4000-8000-123456789abc",
        f"CoreApiError: login failed with password={PASSWORD} at https://admin:{PASSWORD}@core:8080",
        "http://127.0.0.1:3000/", sender="SalesFlow <ops@shop.example>",
        recipients=["ops@shop.example"], shop_name="Demo shop", secrets=[PASSWORD])
    raw = bytes(msg)
    assert PASSWORD.encode() not in raw
    assert msg["Message-ID"] == "<run-failure.5f2c9a1e-0000-4000-8000-123456789abc@shop.example>"
    assert "daily_job" in msg["Subject"] and "5f2c9a1e" in msg["Subject"]
    text = msg.get_body(("plain",)).get_content()
    assert "http://127.0.0.1:3000/runs/5f2c9a1e-0000-4000-8000-123456789abc" in text
    assert "CoreApiError" in text
    smtp_server.mailer().deliver(msg)
    got = smtp_server.messages[0]
    assert got["rcpt_tos"] == ["ops@shop.example"] and PASSWORD.encode() not in got["raw"]
