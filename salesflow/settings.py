"""Shop-level settings shared by every layer: timezone, currency, money rounding."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

CENT = Decimal("0.01")

DEFAULTS = {
    "SALESFLOW_TIMEZONE": "UTC",
    "SALESFLOW_CURRENCY": "EUR",
    "SALESFLOW_PARTITIONS_START": "2020-01-01",
    "SALESFLOW_WAREHOUSE": "data/warehouse.duckdb",
    "SALESFLOW_HOME": ".",
}


def money(value) -> Decimal:
    """Exact money: Decimal rounded half-up to cents."""
    if isinstance(value, float):
        value = repr(value)
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class ShopSettings:
    timezone: str = DEFAULTS["SALESFLOW_TIMEZONE"]
    currency: str = DEFAULTS["SALESFLOW_CURRENCY"]
    partitions_start: str = DEFAULTS["SALESFLOW_PARTITIONS_START"]

    @classmethod
    def from_env(cls, environ=None) -> "ShopSettings":
        env = os.environ if environ is None else environ
        return cls(
            timezone=env.get("SALESFLOW_TIMEZONE") or DEFAULTS["SALESFLOW_TIMEZONE"],
            currency=env.get("SALESFLOW_CURRENCY") or DEFAULTS["SALESFLOW_CURRENCY"],
            partitions_start=env.get("SALESFLOW_PARTITIONS_START")
            or DEFAULTS["SALESFLOW_PARTITIONS_START"],
        )

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def today(self, now: datetime | None = None) -> date:
        now = now or datetime.now(tz=self.tz)
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        return now.astimezone(self.tz).date()

    def yesterday(self, now: datetime | None = None) -> date:
        return self.today(now) - timedelta(days=1)
