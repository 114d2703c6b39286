"""Helpers for tests that need a running core emulator on loopback.

Typical use::

    from emulator.testing import running_emulator, seed_from_frames

    seed_from_frames(tmp_path / "core.sqlite3", products_df, sales_df)
    with running_emulator(tmp_path / "core.sqlite3", clock=FixedClock(...)) as core:
        client = CoreClient(core.url, *core.admin)
        ...

``running_emulator`` starts uvicorn on 127.0.0.1 with a free port in a background thread,
returns once the server is listening and stops it on exit. Keyword arguments go to
:func:`emulator.server.create_app` (``clock``, ``fault_rate``, ``fault_seed``,
``fault_kinds``, ``fault_methods``, ``latency_ms``, ``token_ttl``, ``fault_timeout_s``,
``jwt_secret``, ...).

Exact faults are scripted on the running app, e.g. a bulk sale the core applies 2 s after it
arrived, while the client has long given up::

    held = core.app.state.faults.plan("hang", method="POST", path="/sales/bulk", hold_s=2)
    ...
    held.done.wait(10)  # the held request has been applied and answered
"""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import uvicorn

from emulator.auth import accounts_from_env
from emulator.clock import Clock
from emulator.seed import SeedSummary, seed_frames
from emulator.server import create_app


@dataclass
class RunningEmulator:
    url: str  #: base URL, e.g. ``http://127.0.0.1:53211`` (paths start with ``/api/v1``)
    app: Any  #: the Starlette app (``app.state.core``, ``app.state.faults``, ...)
    clock: Clock  #: the emulator's clock (a ``FixedClock`` can be moved from the test)
    state_path: Path
    admin: tuple[str, str]  #: (phone, password) of the ADMIN account
    user: tuple[str, str]  #: (phone, password) of the USER account

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # pragma: no cover - older uvicorn only
        pass


def uvicorn_config(app, **overrides) -> uvicorn.Config:
    """uvicorn settings the emulator needs: its own ``Date`` header, no server banner."""
    options: dict[str, Any] = dict(
        log_level="warning",
        date_header=False,
        server_header=False,
        lifespan="on",
        timeout_graceful_shutdown=1,
        access_log=False,
    )
    options.update(overrides)
    return uvicorn.Config(app, **options)


@contextmanager
def running_emulator(state_path, *, startup_timeout_s: float = 15.0, **create_app_kwargs) -> Iterator[RunningEmulator]:
    """Run the emulator over ``state_path`` on 127.0.0.1:<free port> for the ``with`` block."""
    app = create_app(state_path, **create_app_kwargs)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = _Server(uvicorn_config(app))
    failure: list[BaseException] = []

    def serve() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # noqa: BLE001 - reported to the caller below
            failure.append(exc)

    thread = threading.Thread(target=serve, name=f"emulator-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if failure or not thread.is_alive():
            sock.close()
            raise RuntimeError(f"the emulator did not start: {failure[0] if failure else 'server exited'}")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise TimeoutError("the emulator did not start in time")
        time.sleep(0.01)
    accounts = {a.role: (a.phone, a.password) for a in accounts_from_env()}
    try:
        yield RunningEmulator(
            url=f"http://127.0.0.1:{port}",
            app=app,
            clock=app.state.clock,
            state_path=Path(state_path),
            admin=accounts["ADMIN"],
            user=accounts["USER"],
        )
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


def seed_from_frames(
    state_path, products_df: pd.DataFrame, sales_df: pd.DataFrame | None = None, **kwargs
) -> SeedSummary:
    """Seed an empty state file from canonical frames (same columns as products.csv/sales.csv).

    Keyword arguments go to :func:`emulator.seed.seed_frames` (``clock``, ``reset``).
    """
    return seed_frames(state_path, products_df, sales_df, **kwargs)
