"""E-mail: settings from the environment, messages, and delivery over SMTP or to an outbox.

A message is built once as an ``email.message.EmailMessage``; ``Mailer.deliver`` sends it
through yagmail (which opens the connection: implicit TLS, STARTTLS or plain) or, when no
SMTP host is configured, writes it as an ``.eml`` file into the outbox folder, where any mail
program opens it. Either way the bytes are the same message.

Security: certificates are verified (the system's CAs, or ``ca_file``); the password is
never part of a repr, a log line or an error message. The login uses the configured user
name exactly as given.

Environment (all optional; no host means outbox mode):

``SALESFLOW_SMTP_HOST``, ``SALESFLOW_SMTP_PORT`` (default 587 for starttls, 465 for ssl, 25
for none), ``SALESFLOW_SMTP_SECURITY`` (``starttls``, ``ssl`` or ``none``; default starttls),
``SALESFLOW_SMTP_USER`` and ``SALESFLOW_SMTP_PASSWORD`` (both or neither),
``SALESFLOW_SMTP_SENDER`` (the From address), ``SALESFLOW_SMTP_TIMEOUT_S`` (default 30),
``SALESFLOW_SMTP_CA_FILE`` (a PEM bundle for a private CA).

Recipients, comma- or semicolon-separated (``Name <a@b.c>`` allowed); a kind's own variable
wins over the general one, and ``none`` means nobody:
``SALESFLOW_REPORT_RECIPIENTS``, ``SALESFLOW_REPORT_RECIPIENTS_DAILY`` / ``_WEEKLY`` /
``_MONTHLY``; ``SALESFLOW_ALERT_RECIPIENTS``, ``SALESFLOW_ALERT_RECIPIENTS_ANOMALY`` /
``_STOCK``; ``SALESFLOW_OPS_RECIPIENTS`` (run failures).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import smtplib
import ssl
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, getaddresses, make_msgid, parseaddr, parsedate_to_datetime
from pathlib import Path
from typing import Iterable, Mapping, Sequence
from urllib.parse import quote

import yagmail

from salesflow.errors import MailConfigError, MailDeliveryError

SECURITY_MODES = ("starttls", "ssl", "none")
DEFAULT_PORTS = {"starttls": 587, "ssl": 465, "none": 25}
DEFAULT_SENDER = "SalesFlow <salesflow@localhost>"
REPORT_KINDS = ("daily", "weekly", "monthly")
ALERT_KINDS = ("anomaly", "stock")
_ADDRESS = re.compile(r"^[^@\s<>()\[\],;:\"]+@[^@\s<>()\[\],;:\"]+$")
# Errors after which the server has certainly not accepted the message.
_NOT_ACCEPTED = (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError,
                 smtplib.SMTPHeloError, smtplib.SMTPNotSupportedError)


# -- addresses -------------------------------------------------------------------------------
def parse_addresses(text: str | None, *, source: str = "address list") -> tuple[str, ...]:
    """Addresses from ``a@b.c, Name <d@e.f>; ...`` in order, without repeats; ``none`` or
    blank gives none. Raises MailConfigError naming ``source`` on anything else."""
    if text is None or not text.strip() or text.strip().lower() == "none":
        return ()
    out, seen = [], set()
    for part in re.split(r"[,;\n]", text):
        if not part.strip():
            continue
        pairs = getaddresses([part])
        name, addr = pairs[0] if len(pairs) == 1 else ("", "")
        if not _ADDRESS.match(addr or ""):
            raise MailConfigError(f"{source}: {part.strip()!r} is not an e-mail address")
        if addr.lower() not in seen:
            seen.add(addr.lower())
            out.append(formataddr((name, addr)) if name else addr)
    return tuple(out)


def bare_address(address: str) -> str:
    return parseaddr(address)[1]


@dataclass(frozen=True)
class Recipients:
    """Who receives what. Empty tuples mean nobody."""

    reports: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    alerts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    ops: tuple[str, ...] = ()

    def for_report(self, kind: str) -> tuple[str, ...]:
        if kind not in REPORT_KINDS:
            raise ValueError(f"unknown report kind {kind!r}")
        return tuple(self.reports.get(kind, ()))

    def for_alert(self, kind: str) -> tuple[str, ...]:
        if kind not in ALERT_KINDS:
            raise ValueError(f"unknown alert kind {kind!r}")
        return tuple(self.alerts.get(kind, ()))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Recipients":
        env = os.environ if environ is None else environ

        def pick(general: str, kinds: Sequence[str]) -> dict[str, tuple[str, ...]]:
            default = parse_addresses(env.get(general), source=general)
            out = {}
            for kind in kinds:
                name = f"{general}_{kind.upper()}"
                value = env.get(name)
                out[kind] = default if value is None or not value.strip() else parse_addresses(value, source=name)
            return out

        return cls(
            reports=pick("SALESFLOW_REPORT_RECIPIENTS", REPORT_KINDS),
            alerts=pick("SALESFLOW_ALERT_RECIPIENTS", ALERT_KINDS),
            ops=parse_addresses(env.get("SALESFLOW_OPS_RECIPIENTS"), source="SALESFLOW_OPS_RECIPIENTS"),
        )


# -- settings --------------------------------------------------------------------------------
@dataclass(frozen=True)
class SmtpSettings:
    host: str = ""
    port: int | None = None
    security: str = "starttls"
    user: str = ""
    password: str = field(default="", repr=False)
    sender: str = DEFAULT_SENDER
    timeout_s: float = 30.0
    ca_file: str = ""
    # where recipients ask to be taken off a list (List-Unsubscribe); empty: the sender
    unsubscribe: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "host", (self.host or "").strip())
        object.__setattr__(self, "user", (self.user or "").strip())
        object.__setattr__(self, "password", self.password or "")
        object.__setattr__(self, "security", (self.security or "starttls").strip().lower())
        if self.security not in SECURITY_MODES:
            raise MailConfigError(f"SMTP security must be one of {', '.join(SECURITY_MODES)}, "
                                  f"not {self.security!r}")
        if self.port is not None and not 0 < int(self.port) < 65536:
            raise MailConfigError(f"SMTP port must be 1-65535, not {self.port!r}")
        if bool(self.user) != bool(self.password):
            raise MailConfigError("set both the SMTP user and the SMTP password, or neither")
        if not _ADDRESS.match(bare_address(self.sender or "")):
            raise MailConfigError(f"the sender {self.sender!r} is not an e-mail address")
        if self.timeout_s <= 0:
            raise MailConfigError("the SMTP timeout must be positive")
        object.__setattr__(self, "unsubscribe", (self.unsubscribe or "").strip())
        if self.unsubscribe and not _ADDRESS.match(bare_address(self.unsubscribe)):
            raise MailConfigError(f"the unsubscribe address {self.unsubscribe!r} is not an e-mail address")

    def __repr__(self) -> str:
        return (f"SmtpSettings(host={self.host!r}, port={self.effective_port!r}, "
                f"security={self.security!r}, user={self.user!r}, "
                f"password={'***' if self.password else ''!r}, sender={self.sender!r})")

    __str__ = __repr__

    @property
    def configured(self) -> bool:
        return bool(self.host)

    @property
    def effective_port(self) -> int:
        return int(self.port) if self.port else DEFAULT_PORTS[self.security]

    def describe(self) -> str:
        who = f", user {self.user}" if self.user else ""
        return f"{self.host}:{self.effective_port} ({self.security}{who})"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "SmtpSettings":
        env = os.environ if environ is None else environ
        port = (env.get("SALESFLOW_SMTP_PORT") or "").strip()
        timeout = (env.get("SALESFLOW_SMTP_TIMEOUT_S") or "").strip()
        try:
            port_value = int(port) if port else None
            timeout_value = float(timeout) if timeout else 30.0
        except ValueError:
            raise MailConfigError("SALESFLOW_SMTP_PORT must be a whole number and "
                                  "SALESFLOW_SMTP_TIMEOUT_S a number of seconds") from None
        return cls(
            host=env.get("SALESFLOW_SMTP_HOST") or "",
            port=port_value,
            security=env.get("SALESFLOW_SMTP_SECURITY") or "starttls",
            user=env.get("SALESFLOW_SMTP_USER") or "",
            password=env.get("SALESFLOW_SMTP_PASSWORD") or "",
            sender=(env.get("SALESFLOW_SMTP_SENDER") or "").strip() or DEFAULT_SENDER,
            timeout_s=timeout_value,
            ca_file=(env.get("SALESFLOW_SMTP_CA_FILE") or "").strip(),
            unsubscribe=env.get("SALESFLOW_MAIL_UNSUBSCRIBE") or "",
        )


# -- redaction -------------------------------------------------------------------------------
_SECRET_PATTERNS = (
    (re.compile(r"(?i)\b(bearer|basic)\s+[a-z0-9._~+/=-]{8,}"), r"\1 ***"),
    (re.compile(r"(?i)\b(password|passwd|pwd|secret|token|api[_-]?key)"
                r"(\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&]+)"), r"\1\2***"),
    (re.compile(r"(?i)([a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@\s/]+@"), r"\1***@"),
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with the given secrets (and their base64 forms) and credential-looking
    fragments (``password=...``, bearer tokens, passwords in URLs) replaced by ``***``."""
    out = str(text)
    for secret in secrets:
        if secret and len(secret) >= 3:
            out = out.replace(secret, "***")
            out = out.replace(base64.b64encode(secret.encode()).decode(), "***")
    for pattern, repl in _SECRET_PATTERNS:
        out = pattern.sub(repl, out)
    return out


# -- messages --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Attachment:
    filename: str
    data: bytes = field(repr=False)
    mime: str = "application/octet-stream"

    @classmethod
    def from_path(cls, path: str | Path, mime: str | None = None) -> "Attachment":
        path = Path(path)
        guessed = {".pdf": "application/pdf", ".png": "image/png", ".csv": "text/csv",
                   ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
        return cls(path.name, path.read_bytes(), mime or guessed.get(path.suffix.lower(),
                                                                     "application/octet-stream"))


def stored_message(raw: bytes) -> EmailMessage:
    """A message stored as ``bytes(msg)``, parsed back to be sent again as built."""
    msg = message_from_bytes(bytes(raw), policy=email_policy.default)
    for name in ("Subject", "To", "From"):
        # a header folded right after its name parses with a leading space
        if msg[name] is not None and str(msg[name]) != str(msg[name]).strip():
            msg.replace_header(name, str(msg[name]).strip())
    return msg


def sender_domain(sender: str) -> str:
    """The domain of ``sender``'s address, for Message-IDs (``salesflow.local`` without one)."""
    addr = bare_address(sender)
    return addr.rsplit("@", 1)[1] if "@" in addr else "salesflow.local"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def build_message(
    *,
    sender: str,
    to: Sequence[str],
    subject: str,
    text: str,
    html: str | None = None,
    attachments: Sequence[Attachment] = (),
    inline_images: Mapping[str, bytes] | None = None,
    message_id: str | None = None,
    headers: Mapping[str, str] | None = None,
    date: datetime | None = None,
) -> EmailMessage:
    """A complete message. ``html`` refers to each inline image as ``cid:<name>`` with the
    names of ``inline_images`` (PNG bytes); they travel inside the HTML part."""
    if not to:
        raise MailConfigError(f"no recipients for {subject!r}")
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Subject"] = _one_line(subject)
    msg["Date"] = format_datetime(date or datetime.now(tz=timezone.utc))
    msg["Message-ID"] = message_id or make_msgid(domain=sender_domain(sender))
    for name, value in (headers or {}).items():
        msg[name] = _one_line(value)
    msg.set_content(text)
    if html is not None:
        cids = {name: make_msgid(domain=sender_domain(sender)) for name in (inline_images or {})}
        for name, cid in cids.items():
            html = html.replace(f"cid:{name}", f"cid:{cid[1:-1]}")
        msg.add_alternative(html, subtype="html")
        html_part = msg.get_payload()[-1]
        for name, cid in cids.items():
            html_part.add_related(inline_images[name], "image", "png", cid=cid,
                                  filename=f"{name}.png", disposition="inline")
    for att in attachments:
        maintype, _, subtype = att.mime.partition("/")
        msg.add_attachment(att.data, maintype=maintype, subtype=subtype or "octet-stream",
                           filename=att.filename)
    return msg


def message_recipients(msg: EmailMessage) -> tuple[str, ...]:
    pairs = getaddresses([str(v) for k in ("To", "Cc", "Bcc") for v in msg.get_all(k, [])])
    seen, out = set(), []
    for _name, addr in pairs:
        if addr and addr.lower() not in seen:
            seen.add(addr.lower())
            out.append(addr)
    return tuple(out)


# -- delivery --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Delivery:
    transport: str  # "smtp" or "outbox"
    message_id: str
    subject: str
    recipients: tuple[str, ...]
    refused: tuple[str, ...] = ()
    path: Path | None = None


def _slug(text: str, limit: int = 60) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()
    return slug[:limit].rstrip("-") or "message"


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


class Mailer:
    """Delivers messages over SMTP when ``smtp.host`` is set, else into ``outbox_dir``."""

    def __init__(self, smtp: SmtpSettings | None = None, outbox_dir: str | Path | None = None):
        self.smtp = smtp or SmtpSettings()
        self.outbox_dir = Path(outbox_dir) if outbox_dir is not None else None
        if not self.smtp.configured and self.outbox_dir is None:
            raise MailConfigError("no SMTP host configured and no outbox folder given")

    def __repr__(self) -> str:
        return f"Mailer(smtp={self.smtp!r}, outbox_dir={str(self.outbox_dir)!r})"

    @property
    def transport(self) -> str:
        return "smtp" if self.smtp.configured else "outbox"

    @property
    def sender(self) -> str:
        return self.smtp.sender

    @property
    def unsubscribe_address(self) -> str:
        """The address recipients write to to leave a list (bare, no display name)."""
        return bare_address(self.smtp.unsubscribe or self.smtp.sender)

    def list_unsubscribe(self, subject: str = "unsubscribe") -> str:
        return f"<mailto:{self.unsubscribe_address}?subject={quote(subject)}>"

    def add_list_unsubscribe(self, msg: EmailMessage) -> None:
        """Give ``msg`` a List-Unsubscribe header naming its subject, unless it has one."""
        if msg["List-Unsubscribe"] is None:
            # RFC 2369: every message says how to leave its list; a request reaches a person,
            # who removes the address from the SALESFLOW_*_RECIPIENTS settings
            msg["List-Unsubscribe"] = self.list_unsubscribe(f"unsubscribe: {msg['Subject']}")

    def describe(self) -> str:
        return f"SMTP {self.smtp.describe()}" if self.smtp.configured else f"outbox {self.outbox_dir}"

    def deliver(self, msg: EmailMessage) -> Delivery:
        recipients = message_recipients(msg)
        if not recipients:
            raise MailConfigError(f"message {msg['Subject']!r} has no recipients")
        if msg["Message-ID"] is None:
            msg["Message-ID"] = make_msgid(domain=sender_domain(self.sender))
        self.add_list_unsubscribe(msg)
        if self.transport == "outbox":
            return self._write_outbox(msg, recipients)
        return self._send_smtp(msg, recipients)

    def _write_outbox(self, msg: EmailMessage, recipients: tuple[str, ...]) -> Delivery:
        self.outbox_dir.mkdir(parents=True, exist_ok=True)
        try:
            stamp = parsedate_to_datetime(str(msg["Date"])).astimezone(timezone.utc)
        except (TypeError, ValueError):
            stamp = datetime.now(tz=timezone.utc)
        digest = hashlib.sha256(str(msg["Message-ID"]).encode()).hexdigest()[:10]
        path = self.outbox_dir / f"{stamp:%Y%m%dT%H%M%SZ}-{_slug(str(msg['Subject']))}-{digest}.eml"
        _write_atomic(path, bytes(msg))
        return Delivery("outbox", str(msg["Message-ID"]), str(msg["Subject"]), recipients, path=path)

    def _send_smtp(self, msg: EmailMessage, recipients: tuple[str, ...]) -> Delivery:
        s = self.smtp
        context = ssl.create_default_context(cafile=s.ca_file or None) if s.security != "none" else None
        options: dict = {"timeout": s.timeout_s}
        if s.security == "ssl":
            options["context"] = context
        stage = "connect"
        try:
            client = yagmail.SMTP(
                user=bare_address(s.sender), host=s.host, port=s.effective_port,
                smtp_ssl=s.security == "ssl",
                smtp_starttls={"context": context} if s.security == "starttls" else False,
                smtp_skip_login=True, soft_email_validation=False, **options)
            client.set_logging(None)
            try:
                client.login()
                if s.user:
                    stage = "login"
                    client.smtp.login(s.user, s.password)
                stage = "send"
                refused = client.smtp.send_message(msg, from_addr=bare_address(s.sender),
                                                   to_addrs=list(recipients))
            finally:
                try:
                    client.close()
                except Exception:  # the message is already accepted or already failed
                    pass
        except Exception as exc:
            maybe = stage == "send" and not isinstance(exc, _NOT_ACCEPTED)
            detail = redact(f"{type(exc).__name__}: {exc}", [s.password])
            raise MailDeliveryError(
                f"could not send {str(msg['Subject'])!r} to {len(recipients)} recipient(s) "
                f"through SMTP server {s.describe()}: {stage} failed: {detail}",
                maybe_delivered=maybe) from None
        return Delivery("smtp", str(msg["Message-ID"]), str(msg["Subject"]), recipients,
                        refused=tuple(sorted(refused or {})))
