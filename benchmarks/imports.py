"""Imports benchmark: validating a 100k-row xlsx; python-calamine against openpyxl.

    .venv/bin/python benchmarks/imports.py [--rows 100000] [--rounds 3]

Generates a sales_history workbook once under benchmarks/.work/ (openpyxl write-only: an
Excel date, sku, whole-number quantity, price and customer id per row; 200 skus). Each
measurement runs in a fresh child process so its peak RSS is its own; rounds alternate the
steps and the median is reported.

- read (calamine via pandas): what an import does before validation, ``read_file``: the zip
  checks (central directory, every member inflated once with a cap, the sheet scanned for
  formulas, merged cells and its row count), then ``pandas.read_excel(engine="calamine")``.
- read (openpyxl read-only): the same cells with ``openpyxl.load_workbook(read_only=True,
  data_only=True)``, the usual alternative.
- validate (calamine): ``read_file`` + ``validate_grid`` (header, kind, every cell parsed, the
  business rules, with an in-memory catalogue of the 200 skus): the figure the issue's
  "under 10 s" is about.
- annotated copy: ``validate`` of the same workbook with 1% of rows made invalid, then the
  annotated copy written with openpyxl (write-only: data, red cells with comments, Errors
  and Summary sheets).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path

from common import ROOT, median_run, report_child, run_child

WORK = ROOT / "benchmarks" / ".work"
TODAY = date(2025, 7, 1)
N_SKUS = 200


def build_workbook(path: Path, rows: int, *, bad_every: int = 0) -> None:
    from openpyxl import Workbook

    rng = random.Random(42)
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("sales_history")
    ws.append(["Date", "Receipt", "SKU", "Qty", "Unit Price", "Customer"])
    start = datetime(2024, 1, 1)
    for i in range(rows):
        receipt = i // 3
        day = start + timedelta(days=receipt * 3 * 500 // rows)
        qty = 1 + rng.randrange(5)
        price = round(0.5 + rng.randrange(5000) / 100, 2)
        if bad_every and i % bad_every == 7:
            qty = -qty  # a bad cell to annotate
        ws.append([day, f"R{receipt}", f"SKU-{rng.randrange(N_SKUS):04d}", qty, price,
                   f"C{receipt % 5000}" if receipt % 4 else None])
    wb.save(path)


def catalogue() -> dict:
    return {f"SKU-{i:04d}": {"sku": f"SKU-{i:04d}", "name": f"Product {i}", "stockQuantity": 10**6}
            for i in range(N_SKUS)}


# -- child steps ---------------------------------------------------------------------------
def step_read_calamine(path: Path) -> dict:
    from salesflow.imports.reading import _load_values, read_file

    t0 = time.perf_counter()
    grid = read_file(path)
    seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    _load_values(path, grid.sheet)  # the pandas/calamine part alone, for the split
    return {"seconds": seconds, "rows": len(grid.rows), "load_seconds": time.perf_counter() - t1}


def step_read_openpyxl(path: Path) -> dict:
    from openpyxl import load_workbook

    t0 = time.perf_counter()
    wb = load_workbook(path, read_only=True, data_only=True)
    rows = [list(r) for r in wb.worksheets[0].iter_rows(values_only=True)]
    wb.close()
    return {"seconds": time.perf_counter() - t0, "rows": len(rows)}


def step_validate(path: Path) -> dict:
    from salesflow.imports.reading import read_file
    from salesflow.imports.validation import validate_grid

    cat = catalogue()
    t0 = time.perf_counter()
    grid = read_file(path)
    t_read = time.perf_counter() - t0
    v = validate_grid(grid, filename=path.name, today=TODAY, catalogue=cat)
    return {"seconds": time.perf_counter() - t0, "read_seconds": t_read, "rows": v.rows_total,
            "issues": len(v.issues), "kind": v.kind.name}


def step_annotate(path: Path) -> dict:
    from salesflow.imports.reading import read_file
    from salesflow.imports.validation import validate_grid
    from salesflow.imports.workbooks import write_report

    cat = catalogue()
    t0 = time.perf_counter()
    grid = read_file(path)
    v = validate_grid(grid, filename=path.name, today=TODAY, catalogue=cat)
    t_valid = time.perf_counter() - t0
    out = path.with_name(path.stem + ".errors.xlsx")
    write_report(out, grid=grid, issues=v.issues, header_index=v.header_index,
                 summary=[("File", path.name), ("Problems", len(v.issues))])
    return {"seconds": time.perf_counter() - t0, "validate_seconds": t_valid,
            "write_seconds": time.perf_counter() - t0 - t_valid, "issues": len(v.issues),
            "report_bytes": out.stat().st_size}


STEPS = {"read_calamine": step_read_calamine, "read_openpyxl": step_read_openpyxl,
         "validate": step_validate, "annotate": step_annotate}


def child(step: str, path: Path) -> dict:
    return run_child(__file__, ["--child", step, "--file", str(path)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", choices=sorted(STEPS))
    parser.add_argument("--file", type=Path)
    args = parser.parse_args()
    if args.child:
        return report_child(STEPS[args.child](args.file))

    sys.path.insert(0, str(ROOT))
    WORK.mkdir(parents=True, exist_ok=True)
    clean = WORK / f"sales_history_{args.rows}.xlsx"
    dirty = WORK / f"sales_history_{args.rows}_bad.xlsx"
    for path, bad in ((clean, 0), (dirty, 100)):
        if not path.exists():
            print(f"writing {path.name} ...", flush=True)
            t0 = time.perf_counter()
            build_workbook(path, args.rows, bad_every=bad)
            print(f"written in {time.perf_counter() - t0:.1f} s ({path.stat().st_size:,} bytes)", flush=True)
    runs: dict[str, list[dict]] = {}
    for round_no in range(args.rounds):
        for step in ("read_calamine", "read_openpyxl", "validate", "annotate"):
            print(f"round {round_no + 1}/{args.rounds}: {step} ...", flush=True)
            runs.setdefault(step, []).append(child(step, dirty if step == "annotate" else clean))
    res = {k: median_run(v) for k, v in runs.items()}
    cal, opx, val, ann = res["read_calamine"], res["read_openpyxl"], res["validate"], res["annotate"]

    def row(label: str, r: dict, extra: str = "") -> str:
        return (f"| {label} | {r['seconds']:.2f} | {r['all_seconds']} | "
                f"{args.rows / r['seconds']:,.0f} | {r['peak_rss_mb']:.0f} | {extra} |")

    report = "\n".join([
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        f"workbook: {args.rows:,} rows x 6 columns, {clean.stat().st_size:,} bytes",
        "",
        "| measurement | seconds (median) | all rounds | rows/s | peak RSS MB | note |",
        "| --- | ---: | --- | ---: | ---: | --- |",
        row("read: zip checks + calamine via pandas", cal,
            f"pandas.read_excel(calamine) alone {cal['load_seconds']:.2f} s"),
        row("read: openpyxl read-only", opx),
        row("validate (read + every rule)", val, f"read {val['read_seconds']:.2f} s; "
            f"{val['issues']} problems"),
        row("validate + annotated copy (1% bad rows)", ann,
            f"validate {ann['validate_seconds']:.2f} s, write {ann['write_seconds']:.2f} s; "
            f"{ann['issues']:,} problems"),
        "",
        f"calamine vs openpyxl reading: {opx['seconds'] / cal['seconds']:.1f}x faster, "
        f"{opx['peak_rss_mb'] / cal['peak_rss_mb']:.1f}x the memory for openpyxl",
        f"target: validating {args.rows:,} rows under 10 s: {val['seconds']:.2f} s "
        f"({'met' if val['seconds'] < 10 else 'NOT met'})",
    ])
    print(report)
    (WORK / "imports-latest.md").write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
