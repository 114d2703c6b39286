"""Fixtures of the emulator contract tests: a small shop, a running emulator, logged-in clients."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime

import httpx
import pandas as pd
import pytest

from emulator.clock import FixedClock
from emulator.testing import running_emulator, seed_from_frames

API = "/api/v1"
NOW = datetime(2025, 3, 10, 15, 30, 0)

_ENV = (
    "JWT_SECRET",
    "SALESFLOW_TIMEZONE",
    "SALESFLOW_CORE_PHONE",
    "SALESFLOW_CORE_PASSWORD",
    "SALESFLOW_EMULATOR_USER_PHONE",
    "SALESFLOW_EMULATOR_USER_PASSWORD",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)


def shop_products() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sku": ["MUG-1", "TEA-1", "PEN-1", "BAG-1"],
            "name": ["Blue Mug", "Green Tea", "Pen", "Tote Bag"],
            "price": ["12.50", "4.20", "1.10", "9.99"],
            "cost": ["5.00", "", "0.30", "4.00"],
            "category": ["Kitchen", "Food", "", "Bags"],
            "stock_quantity": ["40", "8", "10", "3"],
            "low_stock_threshold": ["5", "8", "", "4"],
        }
    )


def shop_sales() -> pd.DataFrame:
    # Out of time order on purpose; "s-b" lines interleave with others.
    rows = [
        ("s-c", "2025-03-09 18:00:00", "TEA-1", "1", "4.00", ""),
        ("s-a", "2025-03-03 00:00:00", "MUG-1", "2", "11.00", "C-1"),
        ("s-b", "2025-03-02 23:59:59.999", "PEN-1", "3", "1.00", ""),
        ("s-a", "2025-03-03 00:00:00", "TEA-1", "1", "4.00", "C-1"),
        ("s-d", "2025-03-10 08:15:00.120", "MUG-1", "1", "12.50", "C-2"),
        ("s-e", "2025-03-09 18:00:00", "PEN-1", "1", "1.10", ""),
        ("s-b", "2025-03-02 23:59:59.999", "MUG-1", "1", "11.00", ""),
    ]
    return pd.DataFrame(rows, columns=["sale_id", "sale_ts", "sku", "quantity", "unit_price", "customer_id"])


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW, tz="UTC")


@pytest.fixture
def state_path(tmp_path):
    return tmp_path / "core.sqlite3"


@pytest.fixture
def seeded(state_path, clock):
    seed_from_frames(state_path, shop_products(), shop_sales(), clock=clock)
    return state_path


def login(url: str, phone: str, password: str) -> str:
    resp = httpx.post(f"{url}{API}/auth/login", json={"phoneNumber": phone, "password": password})
    assert resp.status_code == 200, resp.text
    return resp.json()["accessToken"]


class Core:
    """A running emulator with an ADMIN and a USER client."""

    def __init__(self, emu):
        self.emu = emu
        self.url = emu.url
        self.clock = emu.clock
        self.anon = httpx.Client(base_url=emu.url + API, timeout=10)
        self.admin_token = login(emu.url, *emu.admin)
        self.admin = httpx.Client(
            base_url=emu.url + API, timeout=10, headers={"Authorization": f"Bearer {self.admin_token}"}
        )
        self.user = httpx.Client(
            base_url=emu.url + API,
            timeout=10,
            headers={"Authorization": f"Bearer {login(emu.url, *emu.user)}"},
        )

    def relogin(self):
        """New tokens for both clients (after moving the clock past their expiry)."""
        self.admin_token = login(self.url, *self.emu.admin)
        self.admin.headers["Authorization"] = f"Bearer {self.admin_token}"
        self.user.headers["Authorization"] = f"Bearer {login(self.url, *self.emu.user)}"

    def close(self):
        for c in (self.anon, self.admin, self.user):
            c.close()


@contextmanager
def core_at(state_path, **kwargs):
    with running_emulator(state_path, **kwargs) as emu:
        core = Core(emu)
        try:
            yield core
        finally:
            core.close()


@pytest.fixture
def core(seeded, clock):
    with core_at(seeded, clock=clock) as c:
        yield c


def assert_error(resp: httpx.Response, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"status", "code", "message", "timestamp", "details"}, body
    assert body["status"] == status and body["code"] == code, body
    assert isinstance(body["message"], str)
    assert len(body["timestamp"]) == 19 and body["timestamp"][10] == " ", body["timestamp"]
    return body


def assert_spring_403(resp: httpx.Response, path: str) -> None:
    assert resp.status_code == 403, resp.text
    body = resp.json()
    assert set(body) == {"timestamp", "status", "error", "path"}, body
    assert body["status"] == 403 and body["error"] == "Forbidden" and body["path"] == path
