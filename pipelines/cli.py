"""The `salesflow` command: emulator, headless materialization, warehouse summary, imports."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date
from pathlib import Path

ENV_FILE = ".env"


def _load_env() -> None:
    """Read ./.env (as `dagster dev` does) without overriding variables already set."""
    try:
        from dotenv import load_dotenv
    except ImportError:  # pragma: no cover - python-dotenv ships with dagster
        return
    if Path(ENV_FILE).exists():
        load_dotenv(ENV_FILE, override=False)


def _require_env(*names: str) -> None:
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        sys.exit(
            f"salesflow: missing configuration {', '.join(missing)}: set them in the environment "
            f"or in .env (see .env.example)"
        )


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def cmd_materialize(args: argparse.Namespace) -> int:
    _require_env("SALESFLOW_CORE_URL", "SALESFLOW_CORE_PHONE", "SALESFLOW_CORE_PASSWORD",
                 "SALESFLOW_WAREHOUSE")
    if args.today:
        if args.as_of or args.since or args.full:
            print("salesflow materialize: --today refreshes the day still trading; it takes no "
                  "--as-of, --since or --full", file=sys.stderr)
            return 2
        from pipelines.runner import run_today

        result = run_today()
        print(result.summary())
        return 0 if result.success else 1
    from pipelines.runner import run_daily

    result = run_daily(as_of=args.as_of, since=args.since, full=args.full)
    print(result.summary())
    return 0 if result.success else 1


def cmd_summary(args: argparse.Namespace) -> int:
    from salesflow.warehouse import connect, table_counts

    path = Path(os.environ.get("SALESFLOW_WAREHOUSE") or "data/warehouse.duckdb")
    if not path.exists():
        print(f"no warehouse at {path}")
        return 1
    with connect(path, read_only=True) as con:
        for table, rows in table_counts(con).items():
            print(f"{table:32s} {rows:>12,d}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    _require_env("SALESFLOW_CORE_URL", "SALESFLOW_CORE_PHONE", "SALESFLOW_CORE_PASSWORD")
    source = Path(args.path)
    if not source.is_file():
        print(f"salesflow import: no such file: {args.path}", file=sys.stderr)
        return 2
    from pipelines.imports_job import MODE_ENV, run_import_file

    mode = args.mode or os.environ.get(MODE_ENV) or "auto"
    success, outcome = run_import_file(source, mode=mode)
    print(outcome.get("text") or outcome.get("message") or outcome.get("status"))
    if not success:
        return 1
    return {"committed": 0, "awaiting_approval": 0, "duplicate": 0}.get(outcome["status"], 3)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _load_env()
    if argv[:1] == ["emulator"]:
        from emulator.cli import main as emulator_main

        return emulator_main(argv[1:]) or 0

    parser = argparse.ArgumentParser(prog="salesflow", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("emulator", help="run the SalesFlow core emulator (see `salesflow emulator --help`)")

    m = sub.add_parser("materialize", help="run the daily job for one as-of date")
    m.add_argument("--as-of", type=_parse_date, default=None,
                   help="the day to materialize (default: the core's yesterday)")
    m.add_argument("--since", type=_parse_date, default=None,
                   help="also (re)load every day from this date, as one run")
    m.add_argument("--full", action="store_true",
                   help="reload the whole history from the first partition, as one run")
    m.add_argument("--today", action="store_true",
                   help="refresh today's figures so far (the core's day, provisional until the "
                   "daily run closes it) and compare them with the same time last week")
    m.set_defaults(func=cmd_materialize)

    s = sub.add_parser("summary", help="rows per warehouse table")
    s.set_defaults(func=cmd_summary)

    i = sub.add_parser(
        "import", help="import one Excel/CSV file now (the inbox sensor's job, on one file)",
        description="Validate PATH and commit it, or reject it with an annotated copy in "
        "SALESFLOW_HOME/rejected/. A file outside SALESFLOW_HOME/inbox is copied there first; "
        "the original is left as it is. Exit status: 0 committed (or awaiting approval, or "
        "already imported), 3 rejected, 1 failed, 2 no such file.")
    i.add_argument("path", help="the .xlsx or .csv file")
    i.add_argument("--mode", choices=("auto", "review"), default=None,
                   help="review: only write a preview and wait for approval "
                   "(default: SALESFLOW_IMPORT_MODE, else auto)")
    i.set_defaults(func=cmd_import)

    args = parser.parse_args(argv)
    from salesflow.warehouse import WarehouseLockedError

    try:
        return args.func(args)
    except WarehouseLockedError as exc:  # another process kept the file longer than the wait
        print(f"salesflow: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
