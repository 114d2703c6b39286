"""The emulator's sense of time, and the Java/Spring text formats of time it answers with.

The core stamps sales with ``LocalDateTime.now()``: the shop's local wall time with no zone.
A :class:`Clock` gives that naive local time in the shop timezone (env ``SALESFLOW_TIMEZONE``,
default UTC). Everything time-dependent in the emulator reads it: sale stamps, the "today" of
``/sales/today`` and ``/sales/history``, token ``iat``/``exp``, sync cursors, error timestamps
and the HTTP ``Date`` header, so a client can learn the core's "today" from any answer.

- ``Clock()``: the wall clock.
- ``Clock(today=date(2025, 3, 1))``: the calendar day is pinned, the time of day moves with
  the wall clock.
- ``FixedClock(datetime(2025, 3, 1, 12, 0))``: frozen until ``advance()``/``set()``; for tests.
"""

from __future__ import annotations

import os
import threading
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from email.utils import format_datetime
from zoneinfo import ZoneInfo

DEFAULT_TIMEZONE = "UTC"
TIMEZONE_ENV = "SALESFLOW_TIMEZONE"


def shop_timezone(tz: str | tzinfo | None = None) -> tzinfo:
    """The shop timezone: ``tz`` if given, else env ``SALESFLOW_TIMEZONE``, else UTC."""
    if isinstance(tz, tzinfo):
        return tz
    name = tz or os.environ.get(TIMEZONE_ENV) or DEFAULT_TIMEZONE
    return ZoneInfo(name)


class Clock:
    """Wall-clock time in the shop timezone, optionally with the calendar day pinned."""

    def __init__(self, today: date | None = None, *, tz: str | tzinfo | None = None):
        if isinstance(today, datetime):
            today = today.date()
        self._today = today
        self.tz = shop_timezone(tz)

    def now(self) -> datetime:
        """Naive local datetime in the shop timezone (Java's ``LocalDateTime.now()``)."""
        wall = datetime.now(self.tz).replace(tzinfo=None)
        if self._today is not None:
            return datetime.combine(self._today, wall.time())
        return wall

    def today(self) -> date:
        return self.now().date()

    def aware(self, local: datetime | None = None) -> datetime:
        """``local`` (default ``now()``) as an aware datetime in the shop timezone."""
        local = self.now() if local is None else local
        return local.replace(tzinfo=self.tz)

    def utcnow(self) -> datetime:
        return self.aware().astimezone(timezone.utc)

    def timestamp(self) -> float:
        """Epoch seconds of ``now()``."""
        return self.aware().timestamp()

    def epoch_ms(self) -> int:
        return int(self.timestamp() * 1000)

    def start_of_day(self, day: date) -> datetime:
        return datetime.combine(day, time.min)

    def __repr__(self) -> str:
        pinned = f"today={self._today.isoformat()}, " if self._today else ""
        return f"{type(self).__name__}({pinned}tz={self.tz})"


class FixedClock(Clock):
    """A clock that stands still until told otherwise; for tests."""

    def __init__(self, at: datetime, *, tz: str | tzinfo | None = None):
        super().__init__(tz=tz)
        self._lock = threading.Lock()
        self._at = self._local(at)

    def _local(self, at: datetime) -> datetime:
        if not isinstance(at, datetime):
            raise TypeError("FixedClock needs a datetime")
        if at.tzinfo is not None:
            at = at.astimezone(self.tz).replace(tzinfo=None)
        return at

    def now(self) -> datetime:
        return self._at

    def set(self, at: datetime) -> None:
        with self._lock:
            self._at = self._local(at)

    def advance(self, delta: timedelta | None = None, **kwargs) -> datetime:
        """Move forward by ``delta`` (or ``timedelta(**kwargs)``); returns the new now."""
        step = delta if delta is not None else timedelta(**kwargs)
        with self._lock:
            self._at = self._at + step
            return self._at

    def __repr__(self) -> str:
        return f"FixedClock({self._at.isoformat()}, tz={self.tz})"


# -- Java/Spring text formats ---------------------------------------------------------------


def java_local_datetime(dt: datetime) -> str:
    """``DateTimeFormatter.ISO_LOCAL_DATE_TIME``: always seconds, fraction without trailing zeros."""
    text = f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}"
    if dt.microsecond:
        text += "." + f"{dt.microsecond:06d}".rstrip("0")
    return text


def java_instant(dt: datetime) -> str:
    """``Instant.toString()``: UTC, ``Z``, fraction in groups of 3 digits when present."""
    if dt.tzinfo is None:
        raise ValueError("java_instant needs an aware datetime")
    dt = dt.astimezone(timezone.utc)
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    us = dt.microsecond
    if us:
        text += f".{us // 1000:03d}" if us % 1000 == 0 else f".{us:06d}"
    return text + "Z"


def api_error_timestamp(clock: Clock) -> str:
    """The ``timestamp`` of the core's error body: ``yyyy-MM-dd HH:mm:ss``, local."""
    return clock.now().strftime("%Y-%m-%d %H:%M:%S")


def spring_error_timestamp(clock: Clock) -> str:
    """The ``timestamp`` of Spring's default error body, e.g. ``2025-12-01T14:03:22.123+00:00``."""
    aware = clock.aware()
    offset = aware.strftime("%z") or "+0000"
    return (
        aware.strftime("%Y-%m-%dT%H:%M:%S")
        + f".{aware.microsecond // 1000:03d}"
        + f"{offset[:3]}:{offset[3:]}"
    )


def http_date(clock: Clock) -> str:
    """RFC 7231 ``Date`` header value (GMT) of the clock's now."""
    return format_datetime(clock.utcnow().replace(microsecond=0), usegmt=True)
