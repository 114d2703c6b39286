"""The import journal: ``ops.imports`` (one row per file content) and ``ops.import_batches``.

``ops.imports`` has one row per file sha256 holding that content's latest state:
``validating → rejected | awaiting_approval | committing → committed | failed``. Dropping a
file whose content is already committed adds a separate row with status ``duplicate`` (and
imports nothing), so every file dropped leaves a trace.

``ops.import_batches`` lists the batches of a commit. ``detail.state`` says how far a batch
got: ``begun`` (recorded with what the commit needs to recognise it later, nothing in flight:
a resume sends at once), ``sent`` (a write left at ``detail.sent_at``, UTC, and its answer is
not recorded: its outcome is unknown until the core is checked) and ``committed`` (with
``committed_at``). Batches of single-product writes also list the rows ``done``, so a batch
the core stopped half-way says exactly which rows were committed. For the warehouse kinds the
data, the batch row and the file's status are one transaction, so no batch stays open there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import duckdb

STATUSES = ("validating", "rejected", "awaiting_approval", "committing", "committed", "failed",
            "duplicate")
MESSAGE_CHARS = 4000


def utcnow() -> datetime:
    return datetime.now(tz=timezone.utc).replace(tzinfo=None, microsecond=0)


def utcnow_exact() -> datetime:
    """UTC now to the microsecond: the clock of ``sent_at`` and of the settle window after it."""
    return datetime.now(tz=timezone.utc).replace(tzinfo=None)


@dataclass
class Batch:
    batch_no: int
    first_row: int | None
    last_row: int | None
    committed_at: datetime | None
    detail: dict

    @property
    def committed(self) -> bool:
        return self.committed_at is not None

    @property
    def state(self) -> str:
        """``begun``, ``sent`` or ``committed``; a batch of an older journal (``pending``, no
        time) counts as sent at an unknown time."""
        if self.committed:
            return "committed"
        return "begun" if self.detail.get("state") == "begun" else "sent"

    @property
    def sent_at(self) -> datetime | None:
        return sent_time(self.detail)

    @property
    def done(self) -> dict[int, str]:
        """Rows of the batch already committed, with what was done to each."""
        return {int(row): action for row, action in (self.detail.get("done") or {}).items()}


def sent_time(detail: dict) -> datetime | None:
    """When the write in flight of a batch left (UTC), if known."""
    value = detail.get("sent_at")
    return datetime.fromisoformat(value) if value else None


def get_import(con: duckdb.DuckDBPyConnection, sha256: str) -> dict | None:
    rows = con.execute(
        """SELECT file_sha256, filename, kind, received_at, status, rows_total, rows_valid,
                  rows_rejected, committed_at, message
           FROM ops.imports WHERE file_sha256 = ? AND status <> 'duplicate'
           ORDER BY received_at DESC LIMIT 1""",
        [sha256],
    ).fetchall()
    if not rows:
        return None
    keys = ("file_sha256", "filename", "kind", "received_at", "status", "rows_total",
            "rows_valid", "rows_rejected", "committed_at", "message")
    return dict(zip(keys, rows[0]))


def set_import(con: duckdb.DuckDBPyConnection, sha256: str, *, filename: str, status: str,
               kind: str | None = None, rows_total: int | None = None,
               rows_valid: int | None = None, rows_rejected: int | None = None,
               committed_at: datetime | None = None, message: str | None = None,
               received_at: datetime | None = None) -> None:
    """Create or update the file's row (not its duplicate rows)."""
    assert status in STATUSES and status != "duplicate", status
    message = None if message is None else message[:MESSAGE_CHARS]
    current = get_import(con, sha256)
    if current is None:
        con.execute(
            "INSERT INTO ops.imports VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [sha256, filename, kind, received_at or utcnow(), status, rows_total, rows_valid,
             rows_rejected, committed_at, message],
        )
        return
    con.execute(
        """UPDATE ops.imports SET filename = ?, kind = coalesce(?, kind), status = ?,
               rows_total = coalesce(?, rows_total), rows_valid = coalesce(?, rows_valid),
               rows_rejected = coalesce(?, rows_rejected),
               committed_at = coalesce(?, committed_at), message = ?
           WHERE file_sha256 = ? AND status <> 'duplicate'""",
        [filename, kind, status, rows_total, rows_valid, rows_rejected, committed_at, message,
         sha256],
    )


def add_duplicate(con: duckdb.DuckDBPyConnection, sha256: str, *, filename: str, kind: str | None,
                  message: str) -> None:
    con.execute(
        "INSERT INTO ops.imports VALUES (?, ?, ?, ?, 'duplicate', NULL, NULL, NULL, NULL, ?)",
        [sha256, filename, kind, utcnow(), message[:MESSAGE_CHARS]],
    )


def batches(con: duckdb.DuckDBPyConnection, sha256: str) -> dict[int, Batch]:
    rows = con.execute(
        """SELECT batch_no, first_row, last_row, committed_at, detail FROM ops.import_batches
           WHERE file_sha256 = ? ORDER BY batch_no""",
        [sha256],
    ).fetchall()
    out = {}
    for no, first, last, at, detail in rows:
        try:
            parsed = json.loads(detail) if detail else {}
        except ValueError:
            parsed = {"text": detail}
        out[no] = Batch(no, first, last, at, parsed)
    return out


def _dump(detail: dict) -> str:
    return json.dumps(detail, default=str, separators=(",", ":"))


def begin_batch(con: duckdb.DuckDBPyConnection, sha256: str, batch_no: int, first_row: int,
                last_row: int, detail: dict[str, Any]) -> dict[str, Any]:
    """Record a batch as begun, nothing sent yet (``committed_at`` NULL); its detail."""
    detail = {**detail, "state": "begun"}
    con.execute("DELETE FROM ops.import_batches WHERE file_sha256 = ? AND batch_no = ?",
                [sha256, batch_no])
    con.execute(
        "INSERT INTO ops.import_batches VALUES (?, ?, ?, ?, NULL, ?)",
        [sha256, batch_no, first_row, last_row, _dump(detail)],
    )
    return detail


def update_batch(con: duckdb.DuckDBPyConnection, sha256: str, batch_no: int,
                 detail: dict[str, Any]) -> dict[str, Any]:
    """Replace the detail of an open batch; the detail."""
    con.execute("UPDATE ops.import_batches SET detail = ? WHERE file_sha256 = ? AND batch_no = ?",
                [_dump(detail), sha256, batch_no])
    return detail


def mark_sent(con: duckdb.DuckDBPyConnection, sha256: str, batch_no: int,
              detail: dict[str, Any]) -> dict[str, Any]:
    """Record, just before a write leaves, that its outcome is unknown from now on; the detail."""
    sent_at = utcnow_exact().isoformat()
    return update_batch(con, sha256, batch_no, {**detail, "state": "sent", "sent_at": sent_at})


def mark_answered(con: duckdb.DuckDBPyConnection, sha256: str, batch_no: int,
                  detail: dict[str, Any]) -> dict[str, Any]:
    """Record that the write in flight was answered (nothing in flight now); the detail."""
    detail = {k: v for k, v in detail.items() if k not in ("sent_at", "sending")}
    return update_batch(con, sha256, batch_no, {**detail, "state": "begun"})


def finish_batch(con: duckdb.DuckDBPyConnection, sha256: str, batch_no: int, first_row: int,
                 last_row: int, detail: dict[str, Any], at: datetime | None = None) -> None:
    """Record a batch as committed (inserting it when it was never begun)."""
    con.execute("DELETE FROM ops.import_batches WHERE file_sha256 = ? AND batch_no = ?",
                [sha256, batch_no])
    con.execute(
        "INSERT INTO ops.import_batches VALUES (?, ?, ?, ?, ?, ?)",
        [sha256, batch_no, first_row, last_row, at or utcnow(),
         _dump({"state": "committed", **detail})],
    )


def row_account(con: duckdb.DuckDBPyConnection, sha256: str) -> tuple[set[int], set[int]]:
    """``(committed, in doubt)`` spreadsheet rows of the file: rows of committed batches and
    rows done in open ones; rows whose write was sent without an answer."""
    committed: set[int] = set()
    in_doubt: set[int] = set()
    for batch in batches(con, sha256).values():
        if batch.committed:
            committed.update(batch.detail.get("rows", []))
            continue
        committed.update(batch.done)
        if batch.state == "sent":
            sending = batch.detail.get("sending")
            in_doubt.update([sending["row"]] if sending else batch.detail.get("rows", []))
    return committed, in_doubt - committed


def committed_rows(con: duckdb.DuckDBPyConnection, sha256: str) -> frozenset[int]:
    """Spreadsheet rows an earlier attempt committed or may have committed."""
    committed, in_doubt = row_account(con, sha256)
    return frozenset(committed | in_doubt)
