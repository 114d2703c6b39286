"""Errors raised by the plain-Python layer. Messages never contain credentials or tokens."""


class SalesflowError(Exception):
    """Base class for errors the pipeline reports to people."""


class CoreApiError(SalesflowError):
    """The core answered with an error, or could not be reached after retries."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


class CoreAuthError(CoreApiError):
    """Login failed, or the account lacks the role a route needs."""


class CoreDataError(SalesflowError):
    """The core sent data that breaks its contract (malformed JSON, missing fields,
    a sale whose items disagree with its total). Nothing is written when this is raised."""


class MailConfigError(SalesflowError):
    """Mail settings or recipient lists from the environment are invalid."""


class MailDeliveryError(SalesflowError):
    """The SMTP server could not be reached, refused the login, or refused the message.

    ``maybe_delivered`` is True when the connection broke after the message data was sent,
    so the server may have accepted it."""

    def __init__(self, message: str, *, maybe_delivered: bool = False):
        super().__init__(message)
        self.maybe_delivered = maybe_delivered


class AlertDeliveryError(MailDeliveryError):
    """An alert digest could not be delivered; its alerts stay pending for the next run."""
