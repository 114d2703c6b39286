"""The Dagster UI in a real browser: scripts/ui_check.py end to end (emulator + dagster dev)."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "ui_check.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("ui_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


ui_check = _load_script()


def _run(args: list[str], timeout: float) -> tuple[int, str]:
    """Run the script; on a timeout, SIGTERM lets it stop what it started before the kill."""
    proc = subprocess.Popen([sys.executable, str(SCRIPT), *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        pytest.fail(f"ui_check.py did not finish within {timeout:.0f} s:\n{out[-4000:]}")
    return proc.returncode, out


@pytest.mark.slow
def test_ui_serves_the_code_location_and_draws_the_asset_graph(tmp_path):
    if ui_check.find_browser() is None:
        pytest.skip("chromium is not installed: run scripts/system-deps.sh (or `apt-get install "
                    "chromium`) to check the UI in a browser")
    screenshot = tmp_path / "asset-graph.png"
    started = time.monotonic()
    code, out = _run(["--screenshot", str(screenshot)], timeout=240)
    took = time.monotonic() - started
    assert code == 0, f"ui_check.py failed (exit {code}) after {took:.0f} s:\n{out[-6000:]}"
    assert "code location 'salesflow' loaded" in out, out
    assert "asset keys of pipelines.definitions.defs are in assetNodes" in out, out
    assert "the asset graph shows every asset group" in out, out
    assert screenshot.is_file(), out
    assert ui_check.png_problem(screenshot) is None, ui_check.png_problem(screenshot)
    size, colours, top_share = ui_check.png_stats(screenshot)
    assert size == ui_check.WINDOW
    assert colours >= ui_check.MIN_COLOURS and top_share < 0.995


def test_blank_screenshots_are_recognised(tmp_path):
    from PIL import Image

    blank = tmp_path / "blank.png"
    Image.new("RGB", (200, 100), (255, 255, 255)).save(blank)
    assert "blank" in ui_check.png_problem(blank)
    assert "no screenshot" in ui_check.png_problem(tmp_path / "missing.png")
    not_png = tmp_path / "page.png"
    not_png.write_text("<html></html>")
    assert "not a PNG" in ui_check.png_problem(not_png)

    busy = tmp_path / "busy.png"
    image = Image.new("RGB", (64, 64), (255, 255, 255))
    for x in range(64):
        for y in range(0, 64, 2):
            image.putpixel((x, y), (x * 4, y * 4, 128))
    image.save(busy)
    assert ui_check.png_problem(busy) is None


def test_the_check_pins_the_project_workspace_and_a_private_home(tmp_path):
    import yaml

    workspace = yaml.safe_load(ui_check.prepare_workspace(tmp_path).read_text())
    project = yaml.safe_load((ROOT / "workspace.yaml").read_text())
    assert [list(e) for e in workspace["load_from"]] == [list(e) for e in project["load_from"]]
    module = workspace["load_from"][0]["python_module"]
    assert module["location_name"] == ui_check.LOCATION
    assert module["working_directory"] == str(ROOT)

    home = ui_check.prepare_dagster_home(tmp_path)
    assert (home / "dagster.yaml").read_text() == (ROOT / "dagster.yaml").read_text()
    env = ui_check.pipeline_env(tmp_path, "http://127.0.0.1:1")
    assert env["DAGSTER_HOME"] == str(home)
    assert env["SALESFLOW_CORE_URL"] == "http://127.0.0.1:1"
    for name in ("SALESFLOW_WAREHOUSE", "SALESFLOW_HOME"):
        assert Path(env[name]).is_relative_to(tmp_path), name
    assert env["SALESFLOW_CORE_PHONE"] and env["SALESFLOW_CORE_PASSWORD"]


def test_graph_url_expands_every_group():
    nodes = [
        {"groupName": "extract", "repository": {"name": "__repository__", "location": {"name": "salesflow"}}},
        {"groupName": "marts", "repository": {"name": "__repository__", "location": {"name": "salesflow"}}},
    ]
    url = ui_check.graph_url("http://127.0.0.1:3000", nodes)
    assert url.startswith("http://127.0.0.1:3000/asset-groups?expanded=")
    for group_id in ("global%40global%3Aextract", "global%40global%3Amarts",
                     "__repository__%40salesflow%3Aextract"):
        assert group_id in url
