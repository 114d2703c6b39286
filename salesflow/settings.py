"""Shop-level settings shared by every layer: name, timezone, currency, first partition."""

from __future__ import annotations

import os
from dataclasses import dataclass

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
        )
