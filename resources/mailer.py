"""E-mail: SMTP through yagmail, or `.eml` files in an outbox folder when no host is set."""

from pathlib import Path

import dagster as dg
from pydantic import Field

from salesflow.mailer import Mailer, Recipients, SmtpSettings


class MailerResource(dg.ConfigurableResource):
    """SMTP settings and who receives what. With ``host`` empty, messages are written as
    ``.eml`` files under ``outbox_dir`` (default: exports/outbox under SALESFLOW_HOME)."""

    host: str = Field(default="", description="SMTP host (SALESFLOW_SMTP_HOST); empty: outbox only")
    port: str = Field(default="", description="SMTP port; empty: 587 for starttls, 465 for ssl, 25")
    security: str = Field(default="starttls", description="starttls, ssl or none")
    user: str = Field(default="", description="SMTP login; empty: no login")
    password: str = Field(default="", description="SMTP password (from the environment only)")
    sender: str = Field(default="", description="From address")
    outbox_dir: str = Field(default="", description="Where .eml files go when no SMTP host is set")
    unsubscribe: str = Field(default="", description="Where recipients ask to leave a list "
                             "(List-Unsubscribe mailto:; SALESFLOW_MAIL_UNSUBSCRIBE); empty: the sender")
    report_recipients: str = Field(default="", description="Comma-separated; SALESFLOW_REPORT_RECIPIENTS")
    alert_recipients: str = Field(default="", description="Comma-separated; SALESFLOW_ALERT_RECIPIENTS")
    ops_recipients: str = Field(default="", description="Comma-separated; SALESFLOW_OPS_RECIPIENTS")

    def settings(self) -> SmtpSettings:
        return SmtpSettings.from_env({
            "SALESFLOW_SMTP_HOST": self.host, "SALESFLOW_SMTP_PORT": self.port,
            "SALESFLOW_SMTP_SECURITY": self.security, "SALESFLOW_SMTP_USER": self.user,
            "SALESFLOW_SMTP_PASSWORD": self.password, "SALESFLOW_SMTP_SENDER": self.sender,
            "SALESFLOW_MAIL_UNSUBSCRIBE": self.unsubscribe,
        })

    def mailer(self, default_outbox: Path) -> Mailer:
        return Mailer(self.settings(), outbox_dir=Path(self.outbox_dir) if self.outbox_dir else default_outbox)

    def recipients(self, overrides: dict[str, str] | None = None) -> Recipients:
        """The general lists from this resource; per-kind lists (SALESFLOW_REPORT_RECIPIENTS_DAILY,
        SALESFLOW_ALERT_RECIPIENTS_STOCK, ...) from ``overrides`` (the environment by default)."""
        import os

        env = dict(os.environ if overrides is None else overrides)
        env.update({"SALESFLOW_REPORT_RECIPIENTS": self.report_recipients,
                    "SALESFLOW_ALERT_RECIPIENTS": self.alert_recipients,
                    "SALESFLOW_OPS_RECIPIENTS": self.ops_recipients})
        return Recipients.from_env(env)
