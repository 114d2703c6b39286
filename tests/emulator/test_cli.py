"""The command line (``python -m emulator``) and the live sales generator."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import types
from datetime import date, datetime
from pathlib import Path

import httpx
import pandas as pd
import pytest

import emulator
from emulator import cli
from emulator.clock import FixedClock
from emulator.core import Core
from emulator.live import LiveSales
from emulator.state import State
from emulator.testing import running_emulator

from .conftest import API, login, shop_products, shop_sales

ROOT = Path(__file__).resolve().parents[2]


def _run(*args, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "emulator", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def test_help():
    proc = _run("--help")
    assert proc.returncode == 0
    for option in ("--state", "--demo", "--products", "--sales", "--reset", "--clock", "--fault-rate",
                   "--fault-seed", "--latency-ms", "--token-ttl", "--live", "--live-rate", "--truth-out"):
        assert option in proc.stdout


def test_seed_from_csv_then_refuse_reseeding(tmp_path, capsys):
    shop_products().to_csv(tmp_path / "products.csv", index=False)
    shop_sales().to_csv(tmp_path / "sales.csv", index=False)
    state = tmp_path / "core.sqlite3"
    args = ["--state", str(state), "--products", str(tmp_path / "products.csv"), "--sales", str(tmp_path / "sales.csv"), "--no-serve"]
    assert cli.main(args) == 0
    assert "4 products, 5 sales, 7 sale lines" in capsys.readouterr().out
    assert cli.main(args) == 2
    assert "--reset" in capsys.readouterr().err
    assert cli.main(args + ["--reset"]) == 0
    assert State(state).counts()["sales"] == 5
    # --keep: a restarted emulator serves what it has instead of failing or reseeding
    assert cli.main(args + ["--keep"]) == 0
    assert "serving it as it is" in capsys.readouterr().out
    assert State(state).counts()["sales"] == 5
    assert cli.main(["--sales", "x.csv", "--no-serve"]) == 2


def test_bad_csv_is_a_clear_error(tmp_path, capsys):
    shop_products().to_csv(tmp_path / "products.csv", index=False)
    sales = shop_sales()
    sales.loc[0, "sku"] = "NOPE"
    sales.to_csv(tmp_path / "sales.csv", index=False)
    code = cli.main(["--state", str(tmp_path / "s.sqlite3"), "--products", str(tmp_path / "products.csv"),
                     "--sales", str(tmp_path / "sales.csv"), "--no-serve"])
    assert code == 2
    assert "sales.csv line 2" in capsys.readouterr().err


def test_demo_uses_the_generator_and_writes_truth(tmp_path, monkeypatch, capsys):
    calls = {}

    def generate_demo(seed, start, end, *, n_products=300, orders_per_day=120.0):
        calls.update(seed=seed, start=start, end=end, n_products=n_products, orders_per_day=orders_per_day)
        truth = pd.DataFrame({"series_id": ["MUG-1"], "ds": ["2025-03-05"], "kind": ["spike"]})
        return types.SimpleNamespace(products=shop_products(), sales=shop_sales(), truth=truth)

    fake = types.ModuleType("emulator.demo")
    fake.generate_demo = generate_demo
    monkeypatch.setitem(sys.modules, "emulator.demo", fake)
    monkeypatch.setattr(emulator, "demo", fake, raising=False)
    state = tmp_path / "data" / "core.sqlite3"
    args = ["--state", str(state), "--demo", "--seed", "7", "--demo-days", "30", "--demo-products", "4",
            "--demo-orders-per-day", "2.5", "--clock", "2025-03-11", "--no-serve"]
    assert cli.main(args) == 0
    assert calls == {"seed": 7, "start": date(2025, 2, 9), "end": date(2025, 3, 10), "n_products": 4, "orders_per_day": 2.5}
    truth = pd.read_csv(tmp_path / "data" / "demo_truth.csv")
    assert truth.to_dict("records") == [{"series_id": "MUG-1", "ds": "2025-03-05", "kind": "spike"}]
    assert State(state).counts()["sale_items"] == 7
    assert cli.main(args) == 2  # already seeded
    assert cli.main(args + ["--reset", "--truth-out", str(tmp_path / "t.csv")]) == 0
    assert (tmp_path / "t.csv").exists()


def test_demo_with_the_real_generator(tmp_path, capsys):
    pytest.importorskip("emulator.demo")
    state = tmp_path / "core.sqlite3"
    args = ["--state", str(state), "--demo", "--demo-days", "20", "--demo-products", "12",
            "--demo-orders-per-day", "15", "--clock", "2025-03-11", "--no-serve"]
    assert cli.main(args) == 0
    assert (tmp_path / "demo_truth.csv").exists()
    core = Core(State(state), FixedClock(datetime(2025, 3, 11, 9, 0), tz="UTC"))
    sales = core.sales_list(core.all_sales_query())
    assert sales and sales[0]["saleDate"] >= "2025-02-19" and sales[-1]["saleDate"] < "2025-03-11"
    assert [s["id"] for s in sales] == list(range(1, len(sales) + 1))
    assert all(a["saleDate"] <= b["saleDate"] for a, b in zip(sales, sales[1:]))
    assert len(core.list_products()) == 12


def test_serves_prints_ready_line_and_stops(tmp_path):
    state = tmp_path / "core.sqlite3"
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulator", "--state", str(state), "--port", "0", "--clock", "2025-03-10"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith(("SALESFLOW_", "JWT_"))},
    )
    try:
        url = None
        deadline = time.monotonic() + 30
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith("SalesFlow core emulator listening on "):
                url = line.strip().rsplit(" ", 1)[1]
        assert url and url.startswith("http://127.0.0.1:"), proc.stderr.read() if proc.poll() is not None else url
        token = login(url, "+15550000001", "salesflow-demo-admin")
        resp = httpx.get(f"{url}{API}/products", headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == 200 and resp.json() == []
        assert resp.headers["date"].startswith("Mon, 10 Mar 2025")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=15)
    assert proc.returncode == 0


def test_live_sales_restock_through_put_and_never_stall(seeded):
    clock = FixedClock(datetime(2025, 3, 10, 15, 30), tz="UTC")
    core = Core(State(seeded), clock)
    live = LiveSales(core, 60, seed=5)
    before_items = {i["sku"]: i["quantity"] for i in core.list_inventory()}
    made = [live.step() for _ in range(150)]
    assert all(s is not None for s in made)
    assert live.made == 150 and live.restocks > 0
    assert any("customerId" in s for s in made) and any("customerId" not in s for s in made)
    products = {p["sku"]: p for p in core.list_products()}
    assert all(p["stockQuantity"] >= 0 for p in products.values())
    # restocks went through the product PUT path: the inventory quantity grew additively
    after_items = {i["sku"]: i["quantity"] for i in core.list_inventory()}
    assert any(after_items[s] > before_items[s] for s in after_items)
    sold = {}
    for s in made:
        for i in s["items"]:
            sold[i["sku"]] = sold.get(i["sku"], 0) + i["quantity"]
            assert i["unitPrice"] == products[i["sku"]]["price"]
    assert sold["MUG-1"] > sold["BAG-1"]  # weighted by past popularity


def test_live_thread_runs_with_the_server_and_stops_with_it(seeded, clock):
    with running_emulator(seeded, clock=clock, live_rate=1200, live_seed=1) as emu:
        token = login(emu.url, *emu.admin)
        deadline = time.monotonic() + 10
        count = 5
        while time.monotonic() < deadline and count < 10:
            time.sleep(0.1)
            count = len(httpx.get(f"{emu.url}{API}/sales", headers={"Authorization": f"Bearer {token}"}).json())
        assert count >= 10
    after = State(seeded).counts()["sales"]
    time.sleep(0.3)
    assert State(seeded).counts()["sales"] == after
    assert not any(t.name == "emulator-live-sales" and t.is_alive() for t in threading.enumerate())


@pytest.mark.parametrize("bad", [["--clock", "tomorrow"], ["--demo", "--products", "p.csv"]])
def test_argument_errors(bad, tmp_path):
    assert cli.main(["--state", str(tmp_path / "s.sqlite3"), "--no-serve", *bad]) == 2
