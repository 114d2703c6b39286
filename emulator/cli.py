"""``python -m emulator`` / ``salesflow emulator``: seed and serve the SalesFlow core emulator.

Examples::

    python -m emulator --demo --reset                 # fresh demo shop, then serve on :8080
    python -m emulator --products p.csv --sales s.csv --reset
    python -m emulator                                # serve the existing state
    python -m emulator --live --live-rate 30 --fault-rate 0.05 --fault-seed 7
    python -m emulator --fault-rate 0.2 --fault-kinds hang --fault-methods POST,PUT --fault-timeout 45
                                                      # writes applied after the client gave up
"""

from __future__ import annotations

import argparse
import inspect
import shutil
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import uvicorn

from emulator.clock import Clock
from emulator.faults import FAULT_KINDS
from emulator.seed import SeedError, SeedSummary, seed_csvs, seed_frames
from emulator.state import State, discard_state

DEFAULT_STATE = "data/emulator.sqlite3"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m emulator",
        description="HTTP emulator of the SalesFlow core (the contract of JAVA_API.md).",
    )
    p.add_argument("--state", default=DEFAULT_STATE, help="SQLite state file (default: %(default)s)")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default: %(default)s)")
    p.add_argument("--port", type=int, default=8080, help="listen port (default: %(default)s)")
    p.add_argument("--reset", action="store_true", help="discard the existing state first")
    p.add_argument("--keep", action="store_true",
                   help="with --demo or --products: serve an already seeded state as it is "
                        "instead of failing (for restarts of a long-lived emulator)")

    seed = p.add_argument_group("seeding (only into an empty state; add --reset to replace one)")
    seed.add_argument("--demo", action="store_true", help="generate and load a demo shop")
    seed.add_argument("--seed", type=int, default=42, help="demo RNG seed (default: %(default)s)")
    seed.add_argument("--demo-days", type=int, default=760, help="days of demo history (default: %(default)s)")
    seed.add_argument("--demo-products", type=int, default=300, help="demo catalogue size (default: %(default)s)")
    seed.add_argument(
        "--demo-orders-per-day", type=float, default=120.0, help="mean demo orders per day (default: %(default)s)"
    )
    seed.add_argument(
        "--truth-out",
        default=None,
        help="where the demo writes its planted anomalies (default: demo_truth.csv next to the state)",
    )
    seed.add_argument("--products", metavar="CSV", help="canonical products.csv to load")
    seed.add_argument("--sales", metavar="CSV", help="canonical sales.csv to load (needs --products)")

    run = p.add_argument_group("behaviour")
    run.add_argument("--clock", metavar="YYYY-MM-DD", help="pin the emulator's calendar day")
    run.add_argument("--fault-rate", type=float, default=0.0, help="probability of a fault per request")
    run.add_argument("--fault-seed", type=int, default=None, help="seed of the fault RNG")
    run.add_argument(
        "--fault-kinds",
        default=None,
        help=f"comma-separated subset of {','.join(FAULT_KINDS)} (default: all)",
    )
    run.add_argument(
        "--fault-methods",
        default=None,
        help="comma-separated HTTP methods faults hit, e.g. POST,PUT,DELETE for writes only (default: all)",
    )
    run.add_argument("--fault-timeout", type=float, default=10.0, help="seconds a 'hang' fault lasts")
    run.add_argument("--latency-ms", type=float, default=0, help="delay added to every request")
    run.add_argument("--token-ttl", type=float, default=3600, help="access token lifetime in seconds")
    run.add_argument("--live", action="store_true", help="keep making sales in real time")
    run.add_argument(
        "--live-rate", type=float, default=6.0, help="live sales per minute (default: %(default)s)"
    )
    run.add_argument("--no-serve", action="store_true", help="seed and exit without serving")
    return p


def _fail(message: str) -> int:
    print(f"emulator: error: {message}", file=sys.stderr)
    return 2


def _describe(summary: SeedSummary, what: str) -> str:
    span = f", {summary.first_sale[:10]} .. {summary.last_sale[:10]}" if summary.first_sale else ""
    return (
        f"seeded {what}: {summary.products} products, {summary.sales} sales, "
        f"{summary.sale_lines} sale lines{span} ({summary.seconds:.1f} s)"
    ) + "".join(f"\n  {note}" for note in summary.notes)


def _seed_demo(args, state_path: Path, clock: Clock) -> None:
    from emulator import demo  # the generator is loaded only when asked for

    end = clock.today() - timedelta(days=1)
    start = end - timedelta(days=max(args.demo_days, 1) - 1)
    options = {"n_products": args.demo_products, "orders_per_day": args.demo_orders_per_day}
    if "tz" in inspect.signature(demo.generate_demo).parameters:
        options["tz"] = str(clock.tz)
    started = time.perf_counter()
    shop = demo.generate_demo(args.seed, start, end, **options)
    print(
        f"generated demo shop (seed {args.seed}, {start} .. {end}) in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    truth_out = Path(args.truth_out) if args.truth_out else state_path.parent / "demo_truth.csv"
    truth_out.parent.mkdir(parents=True, exist_ok=True)
    state_path.parent.mkdir(parents=True, exist_ok=True)
    writer = getattr(demo, "write_demo_csvs", None)
    if writer is None:
        summary = seed_frames(state_path, shop.products, shop.sales, clock=clock,
                              products_label="demo products", sales_label="demo sales")
        shop.truth.to_csv(truth_out, index=False)
    else:
        # through the canonical CSVs, exactly as any other seed
        with tempfile.TemporaryDirectory(prefix="demo-", dir=state_path.parent) as tmp:
            products_csv, sales_csv, truth_csv = writer(shop, Path(tmp))
            summary = seed_csvs(state_path, products_csv, sales_csv, clock=clock)
            shutil.copyfile(truth_csv, truth_out)
    print(_describe(summary, "demo shop"), flush=True)
    print(f"demo ground truth written to {truth_out}", flush=True)


class _AnnouncingServer(uvicorn.Server):
    async def startup(self, sockets=None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            host, port = self.config.host, self.config.port
            if self.servers and self.servers[0].sockets:
                port = self.servers[0].sockets[0].getsockname()[1]
            print(f"SalesFlow core emulator listening on http://{host}:{port}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.sales and not args.products:
        return _fail("--sales needs --products")
    if args.demo and args.products:
        return _fail("choose either --demo or --products/--sales")
    try:
        clock = Clock(today=date.fromisoformat(args.clock)) if args.clock else Clock()
    except ValueError:
        return _fail(f"--clock wants YYYY-MM-DD, got {args.clock!r}")
    fault_kinds = [k.strip() for k in args.fault_kinds.split(",") if k.strip()] if args.fault_kinds else None
    fault_methods = [m.strip() for m in args.fault_methods.split(",") if m.strip()] if args.fault_methods else None

    state_path = Path(args.state)
    if args.reset:
        discard_state(state_path)
    elif (args.demo or args.products) and state_path.exists():
        state = State(state_path)
        seeded = state.is_seeded()
        state.close()
        if seeded and not args.keep:
            return _fail(f"{state_path} already holds a catalogue or sales; add --reset to replace it")
        if seeded:
            print(f"{state_path} is already seeded: serving it as it is (--keep)", flush=True)
            args.demo = args.products = None
    try:
        if args.demo:
            _seed_demo(args, state_path, clock)
        elif args.products:
            summary = seed_csvs(state_path, args.products, args.sales, clock=clock)
            print(_describe(summary, Path(args.products).name), flush=True)
    except SeedError as exc:
        return _fail(str(exc))
    if args.no_serve:
        return 0

    from emulator.server import create_app
    from emulator.testing import uvicorn_config

    try:
        app = create_app(
            state_path,
            clock=clock,
            fault_rate=args.fault_rate,
            fault_seed=args.fault_seed,
            fault_kinds=fault_kinds,
            fault_methods=fault_methods,
            fault_timeout_s=args.fault_timeout,
            latency_ms=args.latency_ms,
            token_ttl=args.token_ttl,
            live_rate=args.live_rate if args.live else None,
            live_seed=args.seed if args.live else None,
        )
    except ValueError as exc:
        return _fail(str(exc))
    state = State(state_path)
    counts = state.counts()
    state.close()
    print(
        f"state {state_path}: {counts['products']} products, {counts['sales']} sales, "
        f"{counts['sale_items']} sale lines; today is {clock.today().isoformat()} ({clock.tz})",
        flush=True,
    )
    config = uvicorn_config(app, host=args.host, port=args.port, log_level="info", timeout_graceful_shutdown=5)
    server = _AnnouncingServer(config)
    try:
        server.run()
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C once it has shut down cleanly
        pass
    return 0 if server.started else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
