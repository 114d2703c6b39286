"""Shop-level settings shared by every layer: name, timezone, currency, first partition, the
days the shop is closed."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import date

DEFAULTS = {
    "SALESFLOW_TIMEZONE": "UTC",
    "SALESFLOW_CURRENCY": "EUR",
    "SALESFLOW_PARTITIONS_START": "2020-01-01",
    "SALESFLOW_WAREHOUSE": "data/warehouse.duckdb",
    "SALESFLOW_HOME": ".",
    "SALESFLOW_SHOP_NAME": "SalesFlow shop",
}


@dataclass(frozen=True)
class ShopSettings:
    timezone: str = DEFAULTS["SALESFLOW_TIMEZONE"]
    currency: str = DEFAULTS["SALESFLOW_CURRENCY"]
    partitions_start: str = DEFAULTS["SALESFLOW_PARTITIONS_START"]
    shop_name: str = DEFAULTS["SALESFLOW_SHOP_NAME"]
    closed_days: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, environ=None) -> "ShopSettings":
        env = os.environ if environ is None else environ
        return cls(
            timezone=env.get("SALESFLOW_TIMEZONE") or DEFAULTS["SALESFLOW_TIMEZONE"],
            currency=env.get("SALESFLOW_CURRENCY") or DEFAULTS["SALESFLOW_CURRENCY"],
            partitions_start=env.get("SALESFLOW_PARTITIONS_START")
            or DEFAULTS["SALESFLOW_PARTITIONS_START"],
            shop_name=(env.get("SALESFLOW_SHOP_NAME") or "").strip()
            or DEFAULTS["SALESFLOW_SHOP_NAME"],
            closed_days=parse_closed_days(env.get("SALESFLOW_CLOSED_DAYS") or ""),
        )


def parse_closed_days(text: str) -> tuple[str, ...]:
    """``SALESFLOW_CLOSED_DAYS``: comma-separated days the shop is closed, ``MM-DD`` for every
    year (``12-25``) or ``YYYY-MM-DD`` for one date. A day that is neither is refused by name."""
    days = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            if re.fullmatch(r"\d{2}-\d{2}", item):
                date.fromisoformat(f"2000-{item}")  # a leap year: 02-29 is a day
            elif re.fullmatch(r"\d{4}-\d{2}-\d{2}", item):
                date.fromisoformat(item)
            else:
                raise ValueError
        except ValueError:
            raise ValueError(f"SALESFLOW_CLOSED_DAYS: {item!r} is not a day: write MM-DD (every year) "
                             f"or YYYY-MM-DD") from None
        days.append(item)
    return tuple(days)


def whole_number_from_env(name: str, default: int, *, minimum: int = 1, unit: str = "",
                          environ=None) -> int:
    """A whole number read from the environment variable ``name``: ``default`` when unset or
    blank; a value that is not a whole number, or below ``minimum``, is refused by name."""
    text = ((os.environ if environ is None else environ).get(name) or "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        of = f" of {unit}" if unit else ""
        raise ValueError(f"{name} must be a whole number{of}, got {text!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return value


def whole_days_from_env(name: str, default: int, *, minimum: int = 1, environ=None) -> int:
    """A number of days read from the environment variable ``name`` (see whole_number_from_env)."""
    return whole_number_from_env(name, default, minimum=minimum, unit="days", environ=environ)
