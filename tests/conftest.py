"""Shared fixtures: a small demo shop seeded into an emulator on loopback, per test."""

from __future__ import annotations

import os
import shutil
from datetime import date, datetime
from pathlib import Path

import pytest

# Partitions are fixed when the code location loads: start them with the test shop's history.
os.environ["SALESFLOW_PARTITIONS_START"] = "2025-01-01"
os.environ.setdefault("SALESFLOW_TIMEZONE", "UTC")

SHOP_START = date(2025, 1, 1)
SHOP_END = date(2025, 6, 30)  # the latest complete day: the emulator's clock is on 2025-07-01
CORE_NOW = datetime(2025, 7, 1, 0, 30)


@pytest.fixture(autouse=True)
def _environment_restored():
    """Each test ends with the environment it started with: `salesflow` commands run in-process
    read ./.env into os.environ (as the command does for a user), and a later test's
    subprocesses would otherwise inherit those settings (its recipients, its SMTP host)."""
    saved = dict(os.environ)
    yield
    if dict(os.environ) != saved:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="session")
def small_shop():
    from emulator.demo import generate_demo

    return generate_demo(7, SHOP_START, SHOP_END, n_products=25, orders_per_day=12.0)


@pytest.fixture(scope="session")
def seeded_state_template(tmp_path_factory, small_shop) -> Path:
    from emulator.clock import FixedClock
    from emulator.testing import seed_from_frames

    path = tmp_path_factory.mktemp("core-template") / "core.sqlite3"
    seed_from_frames(path, small_shop.products, small_shop.sales, clock=FixedClock(CORE_NOW))
    return path


@pytest.fixture
def core_state(tmp_path, seeded_state_template) -> Path:
    """A private copy of the seeded emulator state (no two tests share state)."""
    path = tmp_path / "core.sqlite3"
    shutil.copy(seeded_state_template, path)
    return path


def pipeline_resources(emu, warehouse: Path, **client_options) -> dict:
    from resources import CoreApiResource, FoldersResource, WarehouseResource

    client_options.setdefault("backoff_s", 0.01)
    client_options.setdefault("backoff_max_s", 0.05)
    return {
        "core": CoreApiResource(base_url=emu.url, phone=emu.admin[0], password=emu.admin[1],
                                **client_options),
        "warehouse": WarehouseResource(database=str(warehouse)),
        "folders": FoldersResource(home=str(warehouse.parent)),
    }
