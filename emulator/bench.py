"""Measure seeding and full listings at scale: ``python -m emulator.bench --lines 1000000``.

Writes synthetic canonical CSVs, seeds a fresh state from them, serves it on loopback and
times ``GET /api/v1/sales`` (the whole table) and ``GET /api/v1/sales/history?days=N``, reading
each body to its last byte. Prints one line per measurement.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from emulator.clock import FixedClock
from emulator.seed import seed_csvs
from emulator.testing import running_emulator


def synthetic_frames(lines: int, *, products: int = 300, days: int = 760, seed: int = 1,
                     end: datetime = datetime(2025, 6, 30, 20, 0)) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Canonical products/sales frames with about ``lines`` sale lines (2.5 lines per sale)."""
    rng = np.random.default_rng(seed)
    skus = [f"SKU-{i:05d}" for i in range(products)]
    prices = np.round(rng.uniform(1, 200, products), 2)
    prod = pd.DataFrame(
        {
            "sku": skus,
            "name": [f"Product {i}" for i in range(products)],
            "price": [f"{p:.2f}" for p in prices],
            "cost": [f"{p * 0.6:.2f}" for p in prices],
            "category": rng.choice(["Food", "Home", "Toys", ""], products),
            "stock_quantity": rng.integers(0, 500, products).astype(str),
            "low_stock_threshold": "10",
        }
    )
    n_sales = max(lines * 2 // 5, 1)
    per_sale = rng.integers(1, 5, n_sales)
    per_sale[-1] += max(lines - int(per_sale.sum()), 0)
    total = int(per_sale.sum())
    start = end - timedelta(days=days)
    offsets = np.sort(rng.integers(0, days * 86_400_000_000, n_sales))
    ts = (np.datetime64(start, "us") + offsets.astype("timedelta64[us]"))
    sale_idx = np.repeat(np.arange(n_sales), per_sale)
    pidx = rng.integers(0, products, total)
    customers = np.where(rng.random(n_sales) < 0.4, np.char.add("C", rng.integers(0, 20000, n_sales).astype(str)), "")
    sales = pd.DataFrame(
        {
            "sale_id": np.char.add("S", sale_idx.astype(str)),
            "sale_ts": pd.Series(ts[sale_idx]).dt.strftime("%Y-%m-%d %H:%M:%S"),
            "sku": np.array(skus, dtype=object)[pidx],
            "quantity": rng.integers(1, 4, total).astype(str),
            "unit_price": np.array([f"{p:.2f}" for p in prices], dtype=object)[pidx],
            "customer_id": customers[sale_idx],
        }
    )
    return prod, sales


def _rss_mb() -> float:
    try:
        import psutil
    except ImportError:  # pragma: no cover
        return float("nan")
    return psutil.Process().memory_info().rss / 1e6


def _timed_get(client: httpx.Client, path: str) -> tuple[float, int, float]:
    """Seconds to the last byte, body size, and the peak RSS growth (MB) of this process,
    which runs both the server and the client."""
    base = peak = _rss_mb()
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.05):
            peak = max(peak, _rss_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    size = 0
    try:
        with client.stream("GET", path) as resp:
            resp.raise_for_status()
            for chunk in resp.iter_raw(1 << 20):
                size += len(chunk)
    finally:
        done.set()
        sampler.join()
    return time.perf_counter() - started, size, peak - base


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m emulator.bench")
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=7, help="history window to time")
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        prod, sales = synthetic_frames(args.lines)
        prod.to_csv(work / "products.csv", index=False)
        sales.to_csv(work / "sales.csv", index=False)
        print(f"wrote {len(sales)} sale lines as CSV in {time.perf_counter() - t:.1f} s", flush=True)

        state = work / "core.sqlite3"
        clock = FixedClock(datetime(2025, 7, 1, 9, 0))
        t = time.perf_counter()
        summary = seed_csvs(state, work / "products.csv", work / "sales.csv", clock=clock)
        print(
            f"seeded {summary.sales} sales / {summary.sale_lines} lines from CSV in "
            f"{time.perf_counter() - t:.1f} s",
            flush=True,
        )
        with running_emulator(state, clock=clock) as emu:
            with httpx.Client(base_url=emu.url, timeout=120) as client:
                login = client.post(
                    "/api/v1/auth/login", json={"phoneNumber": emu.admin[0], "password": emu.admin[1]}
                )
                client.headers["Authorization"] = f"Bearer {login.json()['accessToken']}"
                seconds, size, grew = _timed_get(client, "/api/v1/sales")
                print(
                    f"GET /api/v1/sales: {summary.sale_lines} lines, {size / 1e6:.0f} MB in {seconds:.2f} s "
                    f"(peak RSS growth {grew:.0f} MB)",
                    flush=True,
                )
                seconds, size, _ = _timed_get(client, f"/api/v1/sales/history?days={args.days}")
                print(
                    f"GET /api/v1/sales/history?days={args.days}: {size / 1e3:.0f} kB in {seconds:.3f} s",
                    flush=True,
                )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
