"""Errors the emulated core answers with, carrying the status and code of JAVA_API.md."""

from __future__ import annotations


class CoreError(Exception):
    """An answer of the core's error body ``{"status","code","message","timestamp","details"}``."""

    def __init__(self, status: int, code: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def not_found(message: str) -> CoreError:
    return CoreError(404, "NOT_FOUND", message)


def runtime_error(message: str) -> CoreError:
    """Spring's ``RuntimeException`` handler: 400 ``RUNTIME_ERROR``."""
    return CoreError(400, "RUNTIME_ERROR", message)


def validation_error(details: dict) -> CoreError:
    return CoreError(400, "VALIDATION_ERROR", "Please fix the errors in your request", dict(details))


def insufficient_stock(sku: str) -> CoreError:
    return CoreError(400, "INSUFFICIENT_STOCK", f"Not enough stock for product {sku}")


def access_denied() -> CoreError:
    return CoreError(403, "ACCESS_DENIED", "You do not have permission to perform this action")


def internal_error() -> CoreError:
    return CoreError(500, "INTERNAL_ERROR", "Something went wrong. Try again later.")


class SpringDefaultError(Exception):
    """Spring's default error body ``{"timestamp","status","error","path"}`` (security filter)."""

    REASONS = {400: "Bad Request", 403: "Forbidden", 404: "Not Found"}

    def __init__(self, status: int):
        super().__init__(self.REASONS.get(status, "Error"))
        self.status = status
        self.reason = self.REASONS.get(status, "Error")
