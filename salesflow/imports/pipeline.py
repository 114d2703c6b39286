"""One inbox file end to end: locate it safely, hash it, read, validate, then reject it with
an annotated copy, hold it for review with a preview, or commit it; record every outcome in
``ops.imports``; move the file out of the inbox.

Folder layout under ``SALESFLOW_HOME``::

    inbox/              drop files here (the sensor watches it)
    inbox/approved/     review mode: move a file here from inbox/pending/ to commit it
    inbox/pending/      review mode: clean files waiting for approval, with <name>.preview.xlsx
    inbox/.cli/         copies made by `salesflow import PATH` (not watched by the sensor)
    processed/          committed files: <UTC stamp>_<sha256[:8]>_<name>
    rejected/           rejected files under the same naming, with <...>.errors.xlsx (bad cells
                        in red, reasons in comments, an Errors sheet) or <...>.errors.txt when
                        the file could not be read at all; duplicates get a .duplicate.txt note
    templates/          an empty, documented template per kind (xlsx and csv) and a README

Infrastructure failures (the core unreachable, the warehouse locked) are not the file's
fault: they are raised (the Dagster op retries), the file stays where it is and its status is
``failed``; the next attempt resumes from the journal.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import unicodedata
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path, PurePosixPath
from typing import Any, Callable
from zoneinfo import ZoneInfo

import duckdb

from salesflow.core_client import CoreClient
from salesflow.errors import CoreApiError, SalesflowError
from salesflow.imports import journal as J
from salesflow.imports.commit import (
    CommitJob, CommitRefused, CommitReport, account, account_text, catalogue, commit, group_sales,
)
from salesflow.imports.kinds import CORE, kind_from_filename
from salesflow.imports.reading import DEFAULT_LIMITS, FileRejected, Grid, Limits, read_file, sha256_file
from salesflow.imports.templates import ensure_templates
from salesflow.imports.validation import Issue, Validated, detect_kind, validate_grid
from salesflow.imports.workbooks import write_report, write_text_report

_log = logging.getLogger("salesflow.imports")

MODES = ("auto", "review")
SUBFOLDERS = ("approved", ".cli")  # inbox sub-folders a run may take files from


@dataclass(frozen=True)
class InboxLayout:
    home: Path

    @property
    def inbox(self) -> Path:
        return Path(self.home) / "inbox"

    @property
    def approved(self) -> Path:
        return self.inbox / "approved"

    @property
    def pending(self) -> Path:
        return self.inbox / "pending"

    @property
    def cli(self) -> Path:
        return self.inbox / ".cli"

    @property
    def processed(self) -> Path:
        return Path(self.home) / "processed"

    @property
    def rejected(self) -> Path:
        return Path(self.home) / "rejected"

    @property
    def templates(self) -> Path:
        return Path(self.home) / "templates"

    def ensure(self, templates: bool = True) -> None:
        for folder in (self.inbox, self.approved, self.pending, self.processed, self.rejected):
            folder.mkdir(parents=True, exist_ok=True)
        if templates:
            ensure_templates(self.templates)


@dataclass(frozen=True)
class ImportSettings:
    mode: str = "auto"
    limits: Limits = DEFAULT_LIMITS
    batch_rows: int = 50
    batch_sales: int = 100
    timezone: str = "UTC"

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"import mode must be one of {MODES}, got {self.mode!r}")


@dataclass
class ImportOutcome:
    status: str  # committed, rejected, awaiting_approval, duplicate, missing, changed
    file: str
    sha256: str | None = None
    kind: str | None = None
    rows_total: int | None = None
    rows_valid: int | None = None
    rows_rejected: int | None = None
    message: str = ""
    issues: list[Issue] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    moved_to: Path | None = None
    report: Path | None = None
    commit: CommitReport | None = None
    # a commit that stopped: rows committed, failed, not committed (and sent without answer)
    account: dict | None = None
    # the sale days a committed import wrote or replaced in raw.sales / raw.sale_items (what
    # was committed, not what the file asked for)
    days: list[date] = field(default_factory=list)
    # what follows the commit in the warehouse (set by the import job): the spans of days whose
    # marts are rebuilt, the days written that have no marts (outside the daily partitions),
    # and the other marts rebuilt, by name ("monthly profit")
    rebuilt_days: list[tuple[date, date]] = field(default_factory=list)
    days_outside: list[date] = field(default_factory=list)
    rebuilt_marts: list[str] = field(default_factory=list)

    def first_errors(self, n: int = 20) -> list[dict]:
        return [{"where": i.where(), **i.as_dict()} for i in self.issues[:n]]

    def summary(self, n: int = 20) -> str:
        lines = [f"{self.file}: {self.status}" + (f" ({self.kind})" if self.kind else "")]
        if self.rows_total is not None:
            lines.append(f"  rows: {self.rows_total} total, {self.rows_valid} valid, "
                         f"{self.rows_rejected} rejected")
        if self.message:
            lines.append(f"  {self.message}")
        for issue in self.issues[:n]:
            lines.append(f"  - {issue.where()}: {issue.reason}")
        if len(self.issues) > n:
            lines.append(f"  ... and {len(self.issues) - n} more")
        for note in self.notes:
            lines.append(f"  note: {note}")
        if self.commit is not None:
            for w in self.commit.warnings:
                lines.append(f"  warning: {w}")
        if self.days:
            lines.append("  sale days written: " + ", ".join(
                span_text(a, b) for a, b in day_runs(self.days)))
        if self.moved_to is not None:
            lines.append(f"  file moved to {self.moved_to}")
        if self.report is not None:
            lines.append(f"  report: {self.report}")
        return "\n".join(lines)


def day_runs(days) -> list[tuple[date, date]]:
    """Days as contiguous spans ``(first, last)``, in order: 3, 4, 5 and 9 March are two."""
    spans: list[list[date]] = []
    for day in sorted(set(days)):
        if spans and (day - spans[-1][1]).days == 1:
            spans[-1][1] = day
        else:
            spans.append([day, day])
    return [(a, b) for a, b in spans]


def span_text(first: date, last: date) -> str:
    """A span of days as the import's output and metadata name it: "2025-03-03" or
    "2025-03-03..2025-03-05"."""
    return first.isoformat() if first == last else f"{first.isoformat()}..{last.isoformat()}"


def days_text(days, n: int = 10) -> str:
    """The first ``n`` days, ISO, comma-separated, with " ..." when there are more."""
    days = list(days)
    return ", ".join(d.isoformat() for d in days[:n]) + (" ..." if len(days) > n else "")


# -- names and paths -------------------------------------------------------------------
def name_problem(name: str) -> str | None:
    """Why a file name is refused, or None."""
    if any(0xDC80 <= ord(ch) <= 0xDCFF for ch in name):
        return "the file name is not valid UTF-8"
    for ch in name:
        if unicodedata.category(ch) in ("Cc", "Cf"):
            return f"the file name contains the control character U+{ord(ch):04X}"
    if "/" in name or "\\" in name or name.startswith(".."):
        return "the file name contains a path separator or '..'"
    if len(name) > 200:
        return f"the file name is {len(name)} characters long; the limit is 200"
    if name.startswith("."):
        return "the file name starts with a dot"
    return None


def _safe_char(ch: str) -> bool:
    if ch in "._- ":
        return True
    if 0xD800 <= ord(ch) <= 0xDFFF:
        return False
    return unicodedata.category(ch)[0] in "LN"


def safe_name(name: str) -> str:
    """A name that is safe anywhere: letters, digits, ``._-`` and spaces; the extension kept."""
    cleaned = "".join(ch if _safe_char(ch) else "_" for ch in name)
    cleaned = re.sub(r"\.{2,}", "_", cleaned).strip(" .") or "file"
    if len(cleaned) > 120:
        stem, dot, ext = cleaned.rpartition(".")
        cleaned = (stem[:110] + dot + ext[:8]) if dot and len(ext) <= 8 else cleaned[:120]
    return cleaned


def shown_name(name: str) -> str:
    """A file name as it can be shown in logs, metadata and the journal."""
    problem = name_problem(name)
    if problem is None:
        return name
    return name.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")[:200]


def resolve_in_inbox(layout: InboxLayout, relpath: str) -> tuple[Path | None, str | None]:
    """``(path, None)`` for a path inside the inbox (top level or an allowed sub-folder),
    else ``(None, reason)``. The file itself is not required to exist."""
    if not isinstance(relpath, str) or not relpath or len(relpath) > 1024:
        return None, "no file path given"
    if "\x00" in relpath:
        return None, "the path contains a NUL character"
    pure = PurePosixPath(relpath)
    if pure.is_absolute() or os.path.isabs(relpath) or relpath.startswith("\\"):
        return None, "the path escapes the inbox (absolute path)"
    parts = relpath.split("/")
    if any(p in ("..", "") for p in parts) or any(p == "." for p in parts):
        return None, "the path escapes the inbox ('..' or empty parts)"
    if len(parts) > 2 or (len(parts) == 2 and parts[0] not in SUBFOLDERS):
        return None, "the path is not a file of the inbox"
    folder = layout.inbox if len(parts) == 1 else layout.inbox / parts[0]
    real_inbox = os.path.realpath(layout.inbox)
    real_folder = os.path.realpath(folder)
    expected = real_inbox if len(parts) == 1 else os.path.join(real_inbox, parts[0])
    if real_folder != expected:
        return None, "the inbox folder is a symbolic link to elsewhere"
    return folder / parts[-1], None


def _stamp(now: datetime) -> str:
    return now.strftime("%Y%m%dT%H%M%SZ")


def _destination(folder: Path, now: datetime, sha: str | None, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    base = f"{_stamp(now)}_{(sha or 'nohash')[:8]}_{safe_name(name)}"
    dest = folder / base
    n = 1
    while os.path.lexists(dest):
        n += 1
        dest = folder / f"{base}.{n}"
    return dest


def _move(src: Path, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(src, dest)
    return dest


# -- the run ---------------------------------------------------------------------------
Connect = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]
ClientFactory = Callable[[], CoreClient]


def process_file(
    relpath: str,
    *,
    layout: InboxLayout,
    connect: Connect,
    client_factory: ClientFactory | None,
    settings: ImportSettings = ImportSettings(),
    expected_sha256: str | None = None,
    log: Any = None,
    now: datetime | None = None,
) -> ImportOutcome:
    """Import the inbox file at ``relpath`` (relative to ``inbox/``)."""
    log = log or _log
    now = now or datetime.now(tz=timezone.utc).replace(tzinfo=None, microsecond=0)
    layout.ensure()
    path, problem = resolve_in_inbox(layout, relpath)
    shown = shown_name(relpath if isinstance(relpath, str) else repr(relpath))
    if path is None:
        return ImportOutcome("rejected", shown, message=f"{problem}: nothing was read or moved",
                             issues=[Issue(None, None, problem)])
    if not os.path.lexists(path):
        return ImportOutcome("missing", shown, message="the file is no longer in the inbox "
                             "(already handled by another run, or removed)")
    approved = relpath.startswith("approved/")
    name = path.name

    if path.is_symlink() or not path.is_file():
        reason = ("symbolic links are not accepted: drop the file itself"
                  if path.is_symlink() else "not a regular file")
        return _reject_unread(path, layout, now, None, name, reason, connect=connect)

    sha = sha256_file(path)
    if expected_sha256 and sha != expected_sha256:
        return ImportOutcome("changed", shown, sha256=sha, message=(
            "the file changed after the sensor saw it; it will be picked up again"))

    problem = name_problem(name)
    if problem:
        return _reject_unread(path, layout, now, sha, name, problem, connect=connect)

    with ExitStack() as stack:
        con = stack.enter_context(connect())
        prior = J.get_import(con, sha)
        if prior is not None and prior["status"] == "committed":
            message = (f"identical to {prior['filename']!r} committed at {prior['committed_at']}: "
                       "not imported again")
            J.add_duplicate(con, sha, filename=shown, kind=prior["kind"], message=message)
            dest = _move(path, _destination(layout.rejected, now, sha, name))
            note = write_text_report(dest.with_name(dest.name + ".duplicate.txt"), [
                f"{shown}: not imported", message, f"sha256 {sha}"])
            return ImportOutcome("duplicate", shown, sha256=sha, kind=prior["kind"],
                                 message=message, moved_to=dest, report=note)
        resuming = prior is not None and prior["status"] in ("committing", "failed")
        J.set_import(con, sha, filename=shown, status="validating", received_at=now,
                     message=("resuming an interrupted commit" if resuming else None))

        client: CoreClient | None = None
        grid: Grid | None = None
        catalogue_: dict[str, dict] = {}
        try:
            grid = read_file(path, name, limits=settings.limits, hint=kind_from_filename(name))
            kind = detect_kind(grid, name)
            if kind.target == CORE or kind.name in ("sales_history", "lead_times"):
                if client_factory is None:
                    raise SalesflowError("the core is not configured")
                client = stack.enter_context(client_factory())
                catalogue_ = catalogue(client)
                today = client.server_today()
            else:
                today = datetime.now(tz=ZoneInfo(settings.timezone)).date()
            committed = J.committed_rows(con, sha) if resuming else frozenset()
            validated = validate_grid(grid, filename=name, today=today,
                                      catalogue=catalogue_ if client is not None else None,
                                      committed_rows=committed, limits=settings.limits)
        except FileRejected as exc:
            return _reject_file(path, layout, now, sha, name, exc, con=con, log=log)
        except (CoreApiError, duckdb.Error, SalesflowError, MemoryError) as exc:
            try:
                J.set_import(con, sha, filename=shown, status="failed",
                             message=f"could not validate ({type(exc).__name__}): the core or the "
                             "warehouse failed; a rerun starts again")
            except duckdb.Error:
                pass
            raise
        except Exception as exc:  # noqa: BLE001 - an unreadable file must not break the run
            log.warning(f"import of {shown}: unexpected {type(exc).__name__} while reading")
            reason = f"the file could not be read ({type(exc).__name__}: {str(exc)[:200]})"
            return _reject_file(path, layout, now, sha, name,
                                FileRejected(reason, code="unreadable", grid=grid), con=con, log=log)

        counts = dict(rows_total=validated.rows_total, rows_valid=validated.rows_valid,
                      rows_rejected=validated.rows_rejected)
        outcome = ImportOutcome("", shown, sha256=sha, kind=validated.kind.name,
                                issues=validated.issues, notes=list(validated.notes), **counts)
        if validated.issues:
            earlier = [b for b in J.batches(con, sha).values() if b.committed] if resuming else []
            dest = _move(path, _destination(layout.rejected, now, sha, name))
            report = write_report(
                dest.with_name(dest.name + ".errors.xlsx"), grid=grid, issues=validated.issues,
                header_index=validated.header_index,
                summary=_summary(shown, sha, validated, "rejected: nothing was committed",
                                 "Fix the red cells (reasons in the comments and on the Errors "
                                 "sheet) and drop the corrected file into the inbox again."))
            outcome.status = "rejected"
            if validated.rows_rejected:
                outcome.message = (f"{validated.rows_rejected} of {validated.rows_total} rows have "
                                   f"problems ({len(validated.issues)} in all): nothing was committed")
            else:
                outcome.message = (f"the header or the sheet has {len(validated.issues)} problem(s): "
                                   "nothing was committed")
            if earlier:
                outcome.message += (f" by this run ({len(earlier)} batch(es) were committed by an "
                                    "earlier, interrupted attempt)")
            J.set_import(con, sha, filename=shown, status="rejected", kind=validated.kind.name,
                         message=_message(outcome), **counts)
            outcome.moved_to, outcome.report = dest, report
            return outcome

        if settings.mode == "review" and not approved:
            dest = layout.pending / safe_name(name)
            if os.path.lexists(dest) and dest != path:
                dest = layout.pending / f"{sha[:8]}_{safe_name(name)}"
            dest = _move(path, dest)
            preview = write_report(
                dest.with_name(dest.name + ".preview.xlsx"), grid=grid, issues=[],
                header_index=validated.header_index,
                summary=_summary(shown, sha, validated, "awaiting approval",
                                 f"Nothing is committed yet. To commit, move {dest.name} from "
                                 "inbox/pending/ to inbox/approved/."),
                plan=_plan(validated, catalogue_))
            outcome.status = "awaiting_approval"
            outcome.message = (f"{validated.rows_total} rows are valid; move the file to "
                               "inbox/approved/ to commit it")
            J.set_import(con, sha, filename=shown, status="awaiting_approval",
                         kind=validated.kind.name, message=outcome.message, **counts)
            outcome.moved_to, outcome.report = dest, preview
            return outcome

        J.set_import(con, sha, filename=shown, status="committing", kind=validated.kind.name,
                     message=("resuming an interrupted commit" if resuming else None), **counts)
        job = CommitJob(sha256=sha, filename=shown, validated=validated, con=con, client=client,
                        today=today, imported_at=now, batch_rows=settings.batch_rows,
                        batch_sales=settings.batch_sales, catalogue=catalogue_, log=log,
                        status_fields=dict(filename=shown, kind=validated.kind.name,
                                           message=None, **counts))
        try:
            report = commit(job)
        except CommitRefused as exc:
            outcome.account = account(con, sha, validated, exc.rows)
            message = (f"{exc}. Of this file, {account_text(outcome.account, validated)}. Fix the "
                       "cause and drop the same file again: committed rows are not written again.")
            J.set_import(con, sha, filename=shown, status="failed", kind=validated.kind.name,
                         message=message, **counts)
            dest = _move(path, _destination(layout.rejected, now, sha, name))
            note = write_text_report(dest.with_name(dest.name + ".errors.txt"), [
                f"{shown}: commit stopped", message, f"sha256 {sha}"])
            outcome.status, outcome.message = "failed", message
            outcome.moved_to, outcome.report = dest, note
            return outcome
        except BaseException as exc:
            try:
                told = account_text(account(con, sha, validated), validated)
                J.set_import(con, sha, filename=shown, status="failed", kind=validated.kind.name,
                             message=f"commit interrupted ({type(exc).__name__}); of this file, "
                             f"{told}; a rerun resumes from there", **counts)
            except Exception:  # noqa: BLE001 - the original error matters more
                pass
            raise
        outcome.commit = report
        outcome.status = "committed"
        outcome.days = list(report.sale_days)
        outcome.message = _commit_message(report)
        J.set_import(con, sha, filename=shown, status="committed", kind=validated.kind.name,
                     committed_at=now, message=_message(outcome), **counts)
        dest = _move(path, _destination(layout.processed, now, sha, name))
        outcome.moved_to = dest
        if approved:
            preview = layout.pending / (safe_name(name) + ".preview.xlsx")
            if preview.exists():
                outcome.report = _move(preview, dest.with_name(dest.name + ".preview.xlsx"))
        return outcome
    raise AssertionError("unreachable")  # pragma: no cover


def _commit_message(report: CommitReport) -> str:
    parts = [f"{report.rows_committed} rows committed in {report.batches_total} batch(es)"]
    if report.batches_skipped:
        parts.append(f"{report.batches_skipped} already committed earlier")
    if report.batches_recovered:
        parts.append(f"{report.batches_recovered} completed after an interruption")
    earlier = report.actions.get("committed_earlier", 0)
    if earlier:
        parts.append(f"{earlier} row(s) committed by an earlier attempt")
    listed = {k: v for k, v in report.actions.items() if k != "committed_earlier"}
    if listed:
        parts.append(", ".join(f"{k}: {v}" for k, v in sorted(listed.items())))
    if report.warnings:
        parts.append(f"{len(report.warnings)} warning(s): " + "; ".join(report.warnings[:3]))
    return "; ".join(parts)


def _message(outcome: ImportOutcome, n: int = 5) -> str:
    text = outcome.message
    if outcome.issues:
        text += " | " + "; ".join(f"{i.where()}: {i.reason}" for i in outcome.issues[:n])
    return text


def _summary(shown: str, sha: str, v: Validated, status: str, next_step: str) -> list[tuple[str, Any]]:
    rows = [
        ("File", shown), ("SHA-256", sha), ("Kind", f"{v.kind.name} ({v.kind.title})"),
        ("Status", status), ("Rows", v.rows_total), ("Valid rows", v.rows_valid),
        ("Rejected rows", v.rows_rejected), ("Problems", len(v.issues)),
        ("Source", f"{v.grid.source}" + (f", sheet {v.grid.sheet!r}" if v.grid.sheet else "")
         + (f", {v.grid.encoding}" if v.grid.encoding else "")
         + (f", delimiter {v.grid.delimiter!r}" if v.grid.delimiter else "")),
        ("Header row", v.header_index + 1),
        ("What it does", v.kind.doc),
        ("Next step", next_step),
    ]
    rows += [("Note", n) for n in v.notes]
    return rows


def _plan(v: Validated, catalogue_: dict[str, dict]) -> tuple[list[str], list[list[Any]]]:
    kind = v.kind.name
    d = v.data
    if kind == "products":
        out = []
        for row, sku, name, price in zip(v.row_numbers, d["sku"], d["name"], d["price"]):
            current = catalogue_.get(sku)
            action = "create" if current is None else "update"
            out.append([row, sku, action, name, str(price),
                        None if current is None else current.get("name"),
                        None if current is None else current.get("price")])
        return ["row", "sku", "action", "name", "price", "current name", "current price"], out
    if kind == "stock_counts":
        out = []
        for row, sku, counted in zip(v.row_numbers, d["sku"], d["counted_quantity"]):
            current = int(catalogue_.get(sku, {}).get("stockQuantity", 0))
            out.append([row, sku, current, counted, counted - current])
        return ["row", "sku", "current stock", "counted", "change"], out
    if kind == "sales":
        sales = group_sales(v)
        out = [[", ".join(map(str, s["rows"])), len(s["items"]),
                ", ".join(f"{sku} x{q}" for sku, q in s["items"]), s["customer_id"]] for s in sales]
        return ["rows", "lines", "items", "customer"], out
    if kind == "sales_history":
        by_day: dict[date, list] = {}
        for day, qty, price in zip(d["date"], d["quantity"], d["unit_price"]):
            agg = by_day.setdefault(day, [0, 0, 0])
            agg[0] += 1
            agg[1] += qty
            agg[2] += price * qty
        return ["date", "lines", "units", "revenue"], [
            [k, a, b, str(Decimal(c).quantize(Decimal("0.01")))] for k, (a, b, c) in sorted(by_day.items())]
    if kind == "lead_times":
        return ["row", "sku", "lead time (days)"], [
            [r, s, n] for r, s, n in zip(v.row_numbers, d["sku"], d["lead_time_days"])]
    if kind == "customers":
        return ["row", "customer_id", "name"], [
            [r, c, n] for r, c, n in zip(v.row_numbers, d["customer_id"], d["name"])]
    by_month: dict[str, list] = {}
    for day, amount in zip(d["date"], d["amount"]):
        agg = by_month.setdefault(day.strftime("%Y-%m"), [0, 0])
        agg[0] += 1
        agg[1] += amount
    return ["month", "expenses", "amount"], [[k, a, str(b)] for k, (a, b) in sorted(by_month.items())]


def _reject_unread(path: Path, layout: InboxLayout, now: datetime, sha: str | None, name: str,
                   reason: str, *, connect: Connect) -> ImportOutcome:
    shown = shown_name(name)
    dest = _move(path, _destination(layout.rejected, now, sha, name))
    report = write_text_report(dest.with_name(dest.name + ".errors.txt"), [
        f"{shown}: rejected, nothing was committed", f"reason: {reason}"]
        + ([f"sha256 {sha}"] if sha else []))
    if sha:
        with connect() as con:
            J.set_import(con, sha, filename=shown, status="rejected", received_at=now,
                         message=reason)
    return ImportOutcome("rejected", shown, sha256=sha, message=reason,
                         issues=[Issue(None, None, reason)], moved_to=dest, report=report)


def _reject_file(path: Path, layout: InboxLayout, now: datetime, sha: str, name: str,
                 exc: FileRejected, *, con, log) -> ImportOutcome:
    shown = shown_name(name)
    dest = _move(path, _destination(layout.rejected, now, sha, name))
    issues = [Issue(None, None, exc.reason)]
    grid = exc.grid
    if grid is not None and grid.rows:
        extra = [(r, c, exc.reason) for r, c in exc.cells]
        report = write_report(
            dest.with_name(dest.name + ".errors.xlsx"), grid=grid, issues=issues,
            extra_cells=extra,
            summary=[("File", shown), ("SHA-256", sha), ("Status", "rejected: nothing was committed"),
                     ("Reason", exc.reason),
                     ("Next step", "Fix the file and drop it into the inbox again; templates "
                      "are in the templates folder.")])
    else:
        report = write_text_report(dest.with_name(dest.name + ".errors.txt"), [
            f"{shown}: rejected, nothing was committed", f"reason: {exc.reason}", f"sha256 {sha}"])
    J.set_import(con, sha, filename=shown, status="rejected", message=exc.reason)
    log.info(f"import of {shown}: rejected ({exc.code})")
    return ImportOutcome("rejected", shown, sha256=sha, message=exc.reason, issues=issues,
                         moved_to=dest, report=report)


def copy_into_inbox(layout: InboxLayout, source: Path) -> str:
    """For ``salesflow import PATH``: the inbox-relative path to run the job on. A file already
    in the inbox (top level or approved/) is used in place; any other file is copied to
    ``inbox/.cli/`` first (the original is never moved)."""
    layout.ensure(templates=False)
    source = Path(source)
    real = Path(os.path.realpath(source))
    for folder, prefix in ((layout.inbox, ""), (layout.approved, "approved/")):
        if real.parent == Path(os.path.realpath(folder)) and not source.is_symlink():
            return prefix + real.name
    layout.cli.mkdir(parents=True, exist_ok=True)
    dest = layout.cli / source.name
    shutil.copyfile(source, dest)
    return f".cli/{source.name}"
