"""The clock and the Java/Spring text formats derived from it."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from emulator.clock import (
    Clock,
    FixedClock,
    api_error_timestamp,
    http_date,
    java_instant,
    java_local_datetime,
    spring_error_timestamp,
)


def test_pinned_day_keeps_the_wall_time_of_day():
    clock = Clock(today=date(2024, 2, 29), tz="UTC")
    now = clock.now()
    wall = datetime.now(timezone.utc).replace(tzinfo=None)
    assert now.date() == date(2024, 2, 29) and clock.today() == date(2024, 2, 29)
    assert abs((datetime.combine(wall.date(), now.time()) - wall).total_seconds()) < 5
    assert now.tzinfo is None


def test_timezone_from_env(monkeypatch):
    monkeypatch.setenv("SALESFLOW_TIMEZONE", "America/New_York")
    clock = Clock()
    assert str(clock.tz) == "America/New_York"
    expected = datetime.now(clock.tz).replace(tzinfo=None)
    assert abs((clock.now() - expected).total_seconds()) < 5


def test_fixed_clock_moves_only_when_told():
    clock = FixedClock(datetime(2025, 1, 31, 23, 59, 59), tz="UTC")
    assert clock.now() == datetime(2025, 1, 31, 23, 59, 59)
    assert clock.advance(seconds=1) == datetime(2025, 2, 1)
    clock.advance(timedelta(days=1))
    assert clock.today() == date(2025, 2, 2)
    clock.set(datetime(2025, 6, 1, 12, tzinfo=timezone.utc))
    assert clock.now() == datetime(2025, 6, 1, 12)
    assert clock.epoch_ms() == int(datetime(2025, 6, 1, 12, tzinfo=timezone.utc).timestamp() * 1000)


@pytest.mark.parametrize(
    "value, text",
    [
        (datetime(2025, 12, 1, 14, 3, 22, 123456), "2025-12-01T14:03:22.123456"),
        (datetime(2025, 12, 1, 14, 3, 22, 120000), "2025-12-01T14:03:22.12"),
        (datetime(2025, 12, 1, 14, 3, 0), "2025-12-01T14:03:00"),
        (datetime(2025, 12, 1, 0, 0, 0, 1), "2025-12-01T00:00:00.000001"),
    ],
)
def test_java_local_datetime(value, text):
    assert java_local_datetime(value) == text


def test_java_instant_and_headers():
    assert java_instant(datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)) == "2025-01-02T03:04:05Z"
    assert java_instant(datetime(2025, 1, 2, 3, 4, 5, 120000, tzinfo=timezone.utc)) == "2025-01-02T03:04:05.120Z"
    assert java_instant(datetime(2025, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc)) == "2025-01-02T03:04:05.123456Z"
    clock = FixedClock(datetime(2025, 7, 1, 2, 0, 0, 250000), tz="Europe/Paris")
    assert http_date(clock) == "Tue, 01 Jul 2025 00:00:00 GMT"
    assert api_error_timestamp(clock) == "2025-07-01 02:00:00"
    assert spring_error_timestamp(clock) == "2025-07-01T02:00:00.250+02:00"
