"""Helpers shared by the benchmark scripts: child processes, peak memory, medians."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def peak_rss_mb() -> float:
    """Peak resident memory of this process, in MB (Linux reports KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(script: str, args: list[str], env: dict | None = None) -> dict:
    """Run ``script --child ...`` in a fresh interpreter with the project importable (``env``
    defaults to this process's); its last stdout line is a JSON result."""
    env = {**(os.environ if env is None else env), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, script, *args], check=True, capture_output=True,
                         text=True, env=env, cwd=ROOT).stdout
    return json.loads(out.strip().splitlines()[-1])


def report_child(result: dict) -> int:
    """The child side of ``run_child``: the step's result plus its peak memory, as the last
    stdout line."""
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result, default=str))
    return 0


def median_run(runs: list[dict]) -> dict:
    """The median round by seconds, with every round's seconds under ``all_seconds``."""
    ordered = sorted(runs, key=lambda r: r["seconds"])
    result = dict(ordered[len(ordered) // 2])
    result["all_seconds"] = [round(r["seconds"], 2) for r in runs]
    return result


def speed_table(speed: dict, steps: dict, columns: dict) -> list[str]:
    """Markdown lines of a speed table: per step of ``steps`` (key -> label) its median and
    every round's seconds, then the ``columns`` (header -> key of the step's result)."""
    lines = ["| " + " | ".join(["measurement", "seconds (median)", "all rounds", *columns]) + " |",
             "| --- | ---: | --- |" + " ---: |" * len(columns)]
    for step, label in steps.items():
        r = speed[step]
        cells = [label, f"{r['seconds']:.1f}", str(r["all_seconds"]), *(str(r[k]) for k in columns.values())]
        lines.append("| " + " | ".join(cells) + " |")
    return lines
