"""Persistent state of the emulated core: one SQLite file (WAL mode) that survives restarts.

Tables: ``users``, ``products``, ``inventory_items``, ``sales``, ``sale_items`` and ``meta``.
Money is stored as integer cents. ``sales.sale_date`` holds the sale's local timestamp in the
exact text the core answers with (``ISO_LOCAL_DATE_TIME``), which sorts chronologically, so a
``/sales/history?days=N`` window is a range scan of the tail of ``idx_sales_date``. Sale ids are
integers assigned in time order; ``sale_items`` is clustered by ``(sale_id, line_no)`` so a
listing ordered by sale id reads both tables sequentially.

Writers are serialised by one lock per state file inside a process (``State.write()``);
readers use their own connections and never block on writers (WAL).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

SCHEMA_VERSION = "1"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT
);
CREATE TABLE IF NOT EXISTS users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    phone_number  TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    username      TEXT,
    email         TEXT,
    role          TEXT NOT NULL CHECK (role IN ('USER', 'ADMIN')),
    created_at    TEXT NOT NULL,
    updated_at    TEXT
);
CREATE TABLE IF NOT EXISTS products (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    name                TEXT NOT NULL UNIQUE,
    sku                 TEXT NOT NULL UNIQUE,
    price_cents         INTEGER NOT NULL,
    stock_quantity      INTEGER NOT NULL,
    description         TEXT,
    image_url           TEXT,
    low_stock_threshold INTEGER NOT NULL,
    last_updated_ms     INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS inventory_items (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    sku         TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    description TEXT,
    quantity    INTEGER NOT NULL,
    price_cents INTEGER NOT NULL,
    cost_cents  INTEGER NOT NULL,
    category    TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sales (
    id          INTEGER PRIMARY KEY,
    sale_date   TEXT NOT NULL,
    total_cents INTEGER NOT NULL,
    customer_id TEXT
);
CREATE TABLE IF NOT EXISTS sale_items (
    sale_id          INTEGER NOT NULL,
    line_no          INTEGER NOT NULL,
    product_id       INTEGER NOT NULL,
    product_name     TEXT NOT NULL,
    sku              TEXT NOT NULL,
    quantity         INTEGER NOT NULL,
    unit_price_cents INTEGER NOT NULL,
    subtotal_cents   INTEGER NOT NULL,
    PRIMARY KEY (sale_id, line_no)
) WITHOUT ROWID;
"""

INDEXES = """
CREATE INDEX IF NOT EXISTS idx_sales_date ON sales(sale_date);
CREATE INDEX IF NOT EXISTS idx_sale_items_product ON sale_items(product_id);
"""

_LOCKS: dict[str, threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()


def _write_lock(path: Path) -> threading.RLock:
    key = str(path.resolve())
    with _LOCKS_GUARD:
        lock = _LOCKS.get(key)
        if lock is None:
            lock = _LOCKS[key] = threading.RLock()
        return lock


def discard_state(path: str | os.PathLike) -> None:
    """Delete a state file and its WAL/SHM companions (``--reset``)."""
    base = Path(path)
    for suffix in ("", "-wal", "-shm", "-journal"):
        p = base.with_name(base.name + suffix)
        if p.exists():
            p.unlink()


class State:
    """Handle on one state file. Cheap to create; connections are opened per thread."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._lock = _write_lock(self.path)
        self._all: list[sqlite3.Connection] = []
        self._all_guard = threading.Lock()
        with self._lock:
            conn = self.connect()
            try:
                conn.executescript(SCHEMA + INDEXES)
                conn.execute(
                    "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
                    (SCHEMA_VERSION,),
                )
                conn.commit()
            finally:
                conn.close()

    def connect(self) -> sqlite3.Connection:
        """A new connection with the emulator's pragmas (caller closes it)."""
        conn = sqlite3.connect(
            self.path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA cache_size=-8192")
        conn.execute("PRAGMA mmap_size=268435456")
        conn.execute("PRAGMA temp_store=MEMORY")
        return conn

    def _thread_conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self.connect()
            with self._all_guard:
                self._all.append(conn)
        return conn

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A connection inside one read transaction (a consistent snapshot)."""
        conn = self._thread_conn()
        if conn.in_transaction:  # nested use inside write()/read()
            yield conn
            return
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; all-or-nothing, serialised with every other writer."""
        with self._lock:
            conn = self._thread_conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            else:
                conn.execute("COMMIT")

    def get_meta(self, key: str) -> str | None:
        with self.read() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def is_seeded(self) -> bool:
        """True once the state holds a catalogue or sales (seeded or written through the API)."""
        with self.read() as conn:
            if conn.execute("SELECT 1 FROM meta WHERE key = 'seeded_at'").fetchone():
                return True
            if conn.execute("SELECT 1 FROM products LIMIT 1").fetchone():
                return True
            return conn.execute("SELECT 1 FROM sales LIMIT 1").fetchone() is not None

    def counts(self) -> dict[str, int]:
        with self.read() as conn:
            return {
                t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                for t in ("users", "products", "inventory_items", "sales", "sale_items")
            }

    def close(self) -> None:
        with self._all_guard:
            conns, self._all = self._all, []
        for conn in conns:
            try:
                conn.close()
            except sqlite3.Error:
                pass
        self._local = threading.local()
