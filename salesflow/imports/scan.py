"""The inbox listing behind the sensor: which files are complete, and which run each deserves.

The listing never opens a file except to hash it, never opens the warehouse, and keeps its
memory in a small JSON cursor: for every file it tracks ``[size, mtime_ns, sha256 or ""]``.

* A file is *complete* once two listings saw the same size and modification time and it is at
  least ``min_age_s`` old: a file still being copied or saved keeps changing. Partial and
  hidden files by name (``.tmp``, ``.part``, ``.crdownload``, ``~$`` Office lock files, names
  starting with one dot as rsync and LibreOffice write them) are not looked at.
* A complete file is hashed and requested once; its cursor entry then holds the sha256, and it
  is not requested again while it stays in the inbox unchanged (its run moves it out). A file
  whose size or time changes is a new file.
* The run key is built from the sha256: ``import-<sha256>`` (``approve-<sha256>`` for a file
  in ``inbox/approved/``), so the same content is never run twice by accident. When the same
  content is dropped again after its first run, ``prior_runs`` (runs tagged with that sha256)
  makes the key ``import-<sha256>-<n>``: the run then sees the content is already committed
  and files the copy as a duplicate, or resumes an interrupted commit. Two files with the same
  content at the same time are requested one after the other.
* Work per listing is bounded (``max_requests`` new runs, ``max_in_flight`` requested files
  still waiting in the inbox, ``hash_budget_s`` of hashing, ``max_tracked`` cursor entries,
  oldest files first), so thousands of dropped files are taken over as many listings as it
  takes, and the cursor stays small because processed files leave the inbox.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from dataclasses import dataclass, field
from typing import Callable

from salesflow.imports.pipeline import InboxLayout
from salesflow.imports.reading import sha256_file

IGNORED_PREFIXES = (".", "~$", "~lock")
IGNORED_SUFFIXES = (".tmp", ".temp", ".part", ".partial", ".crdownload", ".download", ".swp",
                    ".lock", "~")
CURSOR_VERSION = 1


@dataclass(frozen=True)
class ScanSettings:
    min_age_s: float = 10.0
    max_requests: int = 50
    max_in_flight: int = 200
    max_tracked: int = 1_000
    hash_budget_s: float = 15.0
    hash_budget_bytes: int = 2 << 30


@dataclass
class FileRequest:
    relpath: str
    sha256: str
    run_key: str
    stage: str  # "import" or "approve"
    size: int


@dataclass
class ScanResult:
    requests: list[FileRequest]
    cursor: str
    seen: int = 0
    waiting: int = 0  # not complete yet (changing, or too young)
    in_flight: int = 0  # requested, still in the inbox
    deferred: int = 0  # complete, left for a later listing (limits, same content in flight)
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return (f"{self.seen} file(s) in the inbox: {len(self.requests)} requested, "
                f"{self.in_flight} waiting for their run, {self.waiting} not complete yet, "
                f"{self.deferred} deferred")


def ignored(name: str) -> bool:
    """Hidden and temporary files (``.name``, ``~$name``, ``name.part``...) are left alone;
    a name starting with ``..`` is not hidden but hostile, and is requested to be rejected."""
    if name.startswith(".."):
        return False
    lower = name.lower()
    return name.startswith(IGNORED_PREFIXES) or lower.endswith(IGNORED_SUFFIXES) \
        or lower.endswith(".preview.xlsx")


@dataclass
class Entry:
    relpath: str
    size: int
    mtime_ns: int
    symlink: bool
    path: str


def list_inbox(layout: InboxLayout) -> list[Entry]:
    out = []
    for folder, prefix in ((layout.inbox, ""), (layout.approved, "approved/")):
        try:
            it = os.scandir(folder)
        except FileNotFoundError:
            continue
        with it:
            for entry in it:
                if ignored(entry.name):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                is_link = stat.S_ISLNK(st.st_mode)
                if not (stat.S_ISREG(st.st_mode) or is_link):
                    continue
                out.append(Entry(prefix + entry.name, st.st_size, st.st_mtime_ns, is_link,
                                 entry.path))
    out.sort(key=lambda e: (e.mtime_ns, e.relpath))
    return out


def load_cursor(text: str | None) -> dict[str, list]:
    if not text:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(data, dict) or data.get("v") != CURSOR_VERSION:
        return {}
    files = data.get("files")
    return files if isinstance(files, dict) else {}


def dump_cursor(files: dict[str, list]) -> str:
    return json.dumps({"v": CURSOR_VERSION, "files": files}, separators=(",", ":"),
                      sort_keys=True)


def _hash(entry: Entry) -> str:
    if entry.symlink:
        return hashlib.sha256(b"symlink:" + os.fsencode(os.readlink(entry.path))).hexdigest()
    return sha256_file(entry.path)


def scan_inbox(
    layout: InboxLayout,
    cursor: str | None,
    *,
    now: float | None = None,
    settings: ScanSettings = ScanSettings(),
    prior_runs: Callable[[str, str], int] | None = None,
) -> ScanResult:
    now = time.time() if now is None else now
    known = load_cursor(cursor)
    entries = list_inbox(layout)
    result = ScanResult(requests=[], cursor="", seen=len(entries))
    files: dict[str, list] = {}
    candidates: list[Entry] = []
    in_flight_shas: set[str] = set()
    for e in entries:
        prev = known.get(e.relpath)
        same = isinstance(prev, list) and len(prev) == 3 and prev[0] == e.size and prev[1] == e.mtime_ns
        if same and prev[2]:
            files[e.relpath] = prev
            in_flight_shas.add(prev[2])
            result.in_flight += 1
            continue
        if len(files) >= settings.max_tracked:
            result.deferred += 1
            continue
        files[e.relpath] = [e.size, e.mtime_ns, ""]
        if same and now - e.mtime_ns / 1e9 >= settings.min_age_s:
            candidates.append(e)
        else:
            result.waiting += 1

    started = time.monotonic()
    hashed = 0
    for e in candidates:
        if (len(result.requests) >= settings.max_requests
                or result.in_flight >= settings.max_in_flight
                or time.monotonic() - started > settings.hash_budget_s
                or hashed > settings.hash_budget_bytes):
            result.deferred += 1
            continue
        try:
            sha = _hash(e)
        except OSError:
            result.deferred += 1  # vanished or unreadable right now: look again next time
            continue
        hashed += e.size
        if sha in in_flight_shas:
            result.deferred += 1
            result.notes.append(f"{e.relpath!r} has the same content as a file already requested")
            continue
        stage = "approve" if e.relpath.startswith("approved/") else "import"
        n = prior_runs(sha, stage) if prior_runs else 0
        run_key = f"{stage}-{sha}" if n == 0 else f"{stage}-{sha}-{n + 1}"
        result.requests.append(FileRequest(e.relpath, sha, run_key, stage, e.size))
        files[e.relpath] = [e.size, e.mtime_ns, sha]
        in_flight_shas.add(sha)
        result.in_flight += 1
    result.cursor = dump_cursor(files)
    return result
