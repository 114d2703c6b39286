"""Every warehouse connection waits (bounded) for another process's lock instead of dying."""

from __future__ import annotations

import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from salesflow import warehouse as wh

HOLD = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("CREATE TABLE IF NOT EXISTS held (a INTEGER)")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
print("released", flush=True)
"""


@contextmanager
def writer_in_another_process(path: Path, hold_s: float):
    """DuckDB locks per process: hold a write connection in a child for ``hold_s`` seconds."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(hold_s)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


@pytest.fixture
def warehouse(tmp_path) -> Path:
    path = tmp_path / "w.duckdb"
    with wh.connect(path) as con:
        con.execute("INSERT INTO raw.sales (sale_id, sale_date) VALUES (1, DATE '2025-06-30')")
    return path


def test_read_only_connect_waits_for_a_writer_to_finish(warehouse):
    with writer_in_another_process(warehouse, 1.5):
        started = time.monotonic()
        with wh.connect(warehouse, read_only=True, timeout_s=30) as con:
            assert con.execute("SELECT count(*) FROM raw.sales").fetchone()[0] == 1
        waited = time.monotonic() - started
    assert 0.5 < waited < 20


def test_summary_command_waits_instead_of_failing(warehouse, monkeypatch, capsys):
    """`salesflow summary` (and `materialize`'s own read) started while a run writes."""
    from pipelines.cli import main

    monkeypatch.setenv("SALESFLOW_WAREHOUSE", str(warehouse))
    with writer_in_another_process(warehouse, 1.5):
        assert main(["summary"]) == 0
    assert "raw.sales" in capsys.readouterr().out


def test_runner_reads_the_warehouse_after_the_lock_is_released(warehouse):
    """`salesflow materialize` started while another run writes plans its range after the wait."""
    from datetime import date

    from pipelines.runner import plan_start

    with writer_in_another_process(warehouse, 1.5):
        start, _ = plan_start(warehouse, date(2025, 1, 1), date(2025, 6, 30))
    assert start == date(2025, 1, 1)  # no marts yet: the whole history


def test_resource_waits_for_the_lock(warehouse):
    from resources import WarehouseResource

    with writer_in_another_process(warehouse, 1.5):
        with WarehouseResource(database=str(warehouse), lock_timeout_s=30).get_connection() as con:
            con.execute("INSERT INTO raw.sales (sale_id) VALUES (2)")


def test_a_lock_held_longer_than_the_bound_fails_naming_the_file(warehouse, monkeypatch):
    monkeypatch.setenv("SALESFLOW_WAREHOUSE_LOCK_TIMEOUT", "1")
    with writer_in_another_process(warehouse, 30):
        started = time.monotonic()
        with pytest.raises(wh.WarehouseLockedError) as failure:
            with wh.connect(warehouse, read_only=True):
                pass
        assert time.monotonic() - started < 10
    message = str(failure.value)
    assert str(warehouse) in message and "SALESFLOW_WAREHOUSE_LOCK_TIMEOUT" in message


def test_other_errors_are_not_waited_for(tmp_path):
    missing = tmp_path / "nowhere.duckdb"
    started = time.monotonic()
    with pytest.raises(Exception) as failure:
        with wh.connect(missing, read_only=True, timeout_s=30):
            pass
    assert not isinstance(failure.value, wh.WarehouseLockedError)
    assert time.monotonic() - started < 5


def test_lock_timeout_setting_is_checked():
    assert wh.lock_timeout_s({}) == 60
    assert wh.lock_timeout_s({"SALESFLOW_WAREHOUSE_LOCK_TIMEOUT": "2.5"}) == 2.5
    with pytest.raises(ValueError, match="SALESFLOW_WAREHOUSE_LOCK_TIMEOUT"):
        wh.lock_timeout_s({"SALESFLOW_WAREHOUSE_LOCK_TIMEOUT": "soon"})


def test_summary_command_reports_a_lock_held_too_long(warehouse, monkeypatch, capsys):
    from pipelines.cli import main

    monkeypatch.setenv("SALESFLOW_WAREHOUSE", str(warehouse))
    monkeypatch.setenv("SALESFLOW_WAREHOUSE_LOCK_TIMEOUT", "0.5")
    with writer_in_another_process(warehouse, 30):
        assert main(["summary"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("salesflow: the warehouse") and str(warehouse) in error
