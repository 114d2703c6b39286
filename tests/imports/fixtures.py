"""Fixtures of the import tests: an emulated core on loopback and a SALESFLOW_HOME per test."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from emulator.clock import FixedClock
from emulator.testing import RunningEmulator, running_emulator
from salesflow.core_client import CoreClient
from salesflow.imports.pipeline import ImportOutcome, ImportSettings, InboxLayout, process_file
from salesflow.warehouse import connect
from tests.conftest import CORE_NOW


@dataclass
class ImportEnv:
    home: Path
    emu: RunningEmulator

    @property
    def layout(self) -> InboxLayout:
        return InboxLayout(self.home)

    @property
    def warehouse(self) -> Path:
        return self.home / "data" / "warehouse.duckdb"

    def client(self) -> CoreClient:
        return CoreClient(self.emu.url, *self.emu.admin, backoff_s=0.01, backoff_max_s=0.05,
                          max_attempts=3)

    def connect(self):
        return connect(self.warehouse)

    def drop(self, name: str, data: bytes | str | Path, folder: str = "") -> Path:
        target = self.layout.inbox / folder / name if folder else self.layout.inbox / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, Path):
            shutil.copyfile(data, target)
        else:
            target.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        return target

    def run(self, relpath: str, **kw) -> ImportOutcome:
        settings = kw.pop("settings", None) or ImportSettings(**kw.pop("settings_kw", {}))
        return process_file(relpath, layout=self.layout, connect=self.connect,
                            client_factory=self.client, settings=settings, **kw)

    def query(self, sql: str, params=None) -> list[tuple]:
        if not self.warehouse.exists():
            return []
        con = duckdb.connect(str(self.warehouse), read_only=True)
        try:
            return con.execute(sql, params or []).fetchall()
        except duckdb.CatalogException:
            return []
        finally:
            con.close()

    def products(self) -> dict[str, dict]:
        with self.client() as c:
            return {p["sku"]: p for p in c.get_json("/products")}

    def sales(self) -> list[dict]:
        with self.client() as c:
            return c.get_json("/sales")

    def inbox_files(self) -> list[str]:
        inbox = self.layout.inbox
        return sorted(p.name for p in inbox.iterdir() if p.is_file() or p.is_symlink())


@pytest.fixture
def env(tmp_path, core_state):
    with running_emulator(core_state, clock=FixedClock(CORE_NOW)) as emu:
        home = tmp_path / "home"
        home.mkdir()
        yield ImportEnv(home, emu)


@pytest.fixture(scope="module")
def module_core(tmp_path_factory, seeded_state_template):
    state = tmp_path_factory.mktemp("core") / "core.sqlite3"
    shutil.copy(seeded_state_template, state)
    with running_emulator(state, clock=FixedClock(CORE_NOW)) as emu:
        yield emu


@pytest.fixture
def shared_env(tmp_path, module_core):
    home = tmp_path / "home"
    home.mkdir()
    return ImportEnv(home, module_core)
