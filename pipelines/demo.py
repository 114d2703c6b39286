"""`make run` / `make dev`: the whole pipeline against the bundled emulator with demo data.

    python -m pipelines.demo          # start emulator, materialize the latest complete day and
                                      # today so far, stop
    python -m pipelines.demo --dev    # emulator with live sales + `dagster dev` on 127.0.0.1
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx

from pipelines.cli import _load_env

EMULATOR_STATE = Path("data/emulator.sqlite3")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_emulator(port: int, *, live: bool = False, state: Path = EMULATOR_STATE) -> subprocess.Popen:
    # The first start seeds a demo shop; later starts serve the same state (--keep).
    cmd = [sys.executable, "-m", "emulator", "--state", str(state), "--host", "127.0.0.1",
           "--port", str(port), "--demo", "--seed", "42", "--keep"]
    if live:
        cmd += ["--live"]
    proc = subprocess.Popen(cmd)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the emulator exited with code {proc.returncode}")
        try:
            httpx.get(f"{url}/api/v1/products", timeout=1.0)
            return proc
        except httpx.TransportError:
            time.sleep(0.3)
    proc.terminate()
    raise SystemExit("the emulator did not start within 300 s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def run_once() -> int:
    from pipelines.runner import run_daily, run_today

    port = free_port()
    os.environ["SALESFLOW_CORE_URL"] = f"http://127.0.0.1:{port}"
    emulator = start_emulator(port)
    try:
        started = time.perf_counter()
        result = run_daily()
        print(result.summary())
        today = run_today() if result.success else None
        if today is not None:
            print(today.summary())
        print(f"took {time.perf_counter() - started:.1f} s; emulator state: {EMULATOR_STATE.resolve()}")
        home = os.environ.get("DAGSTER_HOME")
        if home:
            print(f"runs are recorded in DAGSTER_HOME={home}: `make dev` shows them in the UI")
        return 0 if result.success and today.success else 1
    finally:
        stop(emulator)


def run_dev() -> int:
    url = urlparse(os.environ.get("SALESFLOW_CORE_URL") or "http://127.0.0.1:8080")
    port = url.port or 8080
    emulator = start_emulator(port, live=True)
    try:
        return subprocess.call(
            [str(Path(sys.executable).parent / "dagster"), "dev", "-w", "workspace.yaml",
             "-h", os.environ.get("DAGSTER_WEBSERVER_HOST", "127.0.0.1"), "-p",
             os.environ.get("DAGSTER_WEBSERVER_PORT", "3000")]
        )
    except KeyboardInterrupt:
        return 0
    finally:
        stop(emulator)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dev", action="store_true", help="emulator with live sales + dagster dev")
    args = parser.parse_args(argv)
    _load_env()
    return run_dev() if args.dev else run_once()


if __name__ == "__main__":
    sys.exit(main())
