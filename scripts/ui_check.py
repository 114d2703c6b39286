"""The Dagster UI, checked for real: webserver, code location, asset graph in a browser.

    .venv/bin/python scripts/ui_check.py [--screenshot PATH] [--no-browser] [--keep]

Starts the core emulator (demo shop) and `dagster dev` on 127.0.0.1 with free ports, a
temporary DAGSTER_HOME, warehouse and SALESFLOW_HOME (nothing under data/ is touched), then:

1. waits until the webserver answers /server_info;
2. through GraphQL: the code location `salesflow` loaded as a RepositoryLocation (not a
   PythonError), and every asset key of `pipelines.definitions.defs` is in `assetNodes`;
3. in headless Chromium: a screenshot of the global asset lineage page (/asset-groups) that
   is not blank, a graph node for every asset group in that page, and asset nodes drawn
   once the groups are expanded.

Prints a short report; exits 0 when every check passed, 1 otherwise. The processes it
started (emulator, dagster dev and its children) are stopped on the way out. The browser is
the first of chromium, chromium-browser, google-chrome found on PATH, or $SALESFLOW_CHROMIUM;
scripts/system-deps.sh installs chromium.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

LOCATION = "salesflow"
GRAPH_PATH = "/asset-groups"  # "Lineage" in the 1.13 UI: the global asset graph
GRAPH_SVG_MARKER = "AssetGraphExplorer_svgContainer"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
WINDOW = (1600, 1000)
MIN_COLOURS = 16

WORKSPACE_QUERY = """
query UiCheckWorkspace {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on RepositoryLocation { name repositories { name } }
          ... on PythonError { message stack }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""

ASSET_NODES_QUERY = """
query UiCheckAssetNodes {
  assetNodes { assetKey { path } groupName isExecutable repository { name location { name } } }
}
"""

# What the UI's "Skip" button of the first-visit community dialog does; without it the dialog
# covers the graph in the screenshot.
NUX_SEEN_MUTATION = """
mutation UiCheckNuxSeen { setNuxSeen }
"""


class CheckFailed(Exception):
    pass


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    failed: bool = False

    def ok(self, text: str) -> None:
        self._say("ok  ", text)

    def fail(self, text: str) -> None:
        self.failed = True
        self._say("FAIL", text)

    def info(self, text: str) -> None:
        self._say("    ", text)

    def _say(self, tag: str, text: str) -> None:
        line = f"ui-check {tag} {text}"
        self.lines.append(line)
        print(line, flush=True)


# -- environment -----------------------------------------------------------------------------
def pipeline_env(tmp: Path, core_url: str) -> dict[str, str]:
    """.env.example defaults < ./.env < the caller's environment < this check's own paths."""
    from dotenv import dotenv_values

    env: dict[str, str] = {}
    for source in (ROOT / ".env.example", ROOT / ".env"):
        if source.exists():
            env.update({k: v for k, v in dotenv_values(source).items() if v is not None})
    env.update(os.environ)
    home = tmp / "salesflow_home"
    home.mkdir(parents=True, exist_ok=True)
    env.update({
        "SALESFLOW_CORE_URL": core_url,
        "SALESFLOW_WAREHOUSE": str(tmp / "warehouse.duckdb"),
        "SALESFLOW_HOME": str(home),
        "DAGSTER_HOME": str(tmp / "dagster_home"),
        "PYTHONUNBUFFERED": "1",
    })
    # SMTP is off for the check: mail would go to the outbox under the temporary home.
    env.pop("SALESFLOW_SMTP_HOST", None)
    return env


def prepare_dagster_home(tmp: Path) -> Path:
    home = tmp / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    return home


def prepare_workspace(tmp: Path) -> Path:
    """The project's workspace.yaml, with module locations pinned to the project root.

    `dagster dev` runs in the temporary folder so that it does not read the project's .env
    (which would override the check's environment); the locations still load from the repo.
    """
    import yaml

    workspace = yaml.safe_load((ROOT / "workspace.yaml").read_text())
    for entry in workspace.get("load_from", []):
        for kind in ("python_module", "python_package", "python_file"):
            target = entry.get(kind)
            if isinstance(target, dict):
                target.setdefault("working_directory", str(ROOT))
                if kind == "python_file":
                    target["relative_path"] = str(ROOT / target["relative_path"])
    path = tmp / "workspace.yaml"
    path.write_text(yaml.safe_dump(workspace, sort_keys=False))
    return path


# -- processes -------------------------------------------------------------------------------
def start_dagster_dev(workspace: Path, port: int, env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen:
    dagster = Path(sys.executable).parent / "dagster"
    cmd = [str(dagster) if dagster.exists() else "dagster", "dev", "-w", str(workspace),
           "-h", "127.0.0.1", "-p", str(port)]
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop_group(proc: subprocess.Popen | None, timeout: float = 20.0) -> None:
    """Stop `dagster dev` and everything it started (webserver, daemon, code server, runs).

    SIGTERM goes to `dagster dev` alone, which shuts its services down in order (signalling
    the whole group at once can leave it waiting); whatever is left of the process group
    after that, or after `timeout`, gets SIGKILL.
    """
    if proc is None:
        return
    pgid = proc.pid  # started with start_new_session: the group is the session leader's pid
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _group_alive(pgid):
        time.sleep(0.2)
    if _group_alive(pgid):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if proc.poll() is None:
        proc.wait(timeout=5)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


@contextlib.contextmanager
def output_to(path: Path):
    """Send this process's stdout/stderr (and so a child's started meanwhile) to a file."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


# -- webserver and GraphQL -------------------------------------------------------------------
def http_get_json(url: str, timeout: float = 3.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def graphql(base: str, query: str, timeout: float = 30.0) -> dict:
    """POST a query to /graphql; its data, or CheckFailed with the errors."""
    body = json.dumps({"query": query}).encode()
    request = urllib.request.Request(f"{base}/graphql", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        payload = json.loads(response.read())
    if payload.get("errors"):
        raise CheckFailed(f"GraphQL errors: {json.dumps(payload['errors'])[:800]}")
    return payload["data"]


def wait_for_webserver(base: str, proc: subprocess.Popen, deadline: float) -> dict:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CheckFailed(f"dagster dev exited with code {proc.returncode} before answering")
        try:
            return http_get_json(f"{base}/server_info")
        except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
            time.sleep(0.5)
    raise CheckFailed(f"the webserver did not answer {base}/server_info in time")


def wait_for_location(base: str, proc: subprocess.Popen, deadline: float) -> dict:
    """The location entry once it is no longer loading."""
    entry = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CheckFailed(f"dagster dev exited with code {proc.returncode}")
        workspace = graphql(base, WORKSPACE_QUERY)["workspaceOrError"]
        if workspace["__typename"] != "Workspace":
            raise CheckFailed(f"workspaceOrError is {workspace['__typename']}: {workspace.get('message')}")
        entries = {e["name"]: e for e in workspace["locationEntries"]}
        entry = entries.get(LOCATION)
        if entry is None and entries:
            raise CheckFailed(f"no code location {LOCATION!r} in the workspace (found {sorted(entries)})")
        if entry is not None and entry["loadStatus"] == "LOADED" and entry["locationOrLoadError"]:
            return entry
        time.sleep(0.5)
    raise CheckFailed(f"the code location {LOCATION!r} did not finish loading in time (last: {entry})")


def expected_asset_keys() -> set[tuple[str, ...]]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # beta/supersession notices are not this check's business
        from pipelines.definitions import defs

        return {tuple(key.path) for key in defs.resolve_asset_graph().get_all_asset_keys()}


def graph_url(base: str, nodes: list[dict]) -> str:
    """The global lineage page with every asset group expanded.

    The UI collapses groups by default; `expanded` takes group ids, which are
    `global@global:<group>` or, with per-location groups switched on,
    `<repository>@<location>:<group>`.
    """
    ids = set()
    for node in nodes:
        group = node.get("groupName")
        if not group:
            continue
        ids.add(f"global@global:{group}")
        repo = node.get("repository") or {}
        if repo.get("name") and (repo.get("location") or {}).get("name"):
            ids.add(f"{repo['name']}@{repo['location']['name']}:{group}")
    query = urllib.parse.urlencode({"expanded": ",".join(sorted(ids))}) if ids else ""
    return f"{base}{GRAPH_PATH}" + (f"?{query}" if query else "")


# -- browser ---------------------------------------------------------------------------------
def find_browser() -> str | None:
    override = os.environ.get("SALESFLOW_CHROMIUM")
    if override:
        return shutil.which(override) or (override if Path(override).exists() else None)
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def run_browser(browser: str, url: str, profile: Path, extra: list[str], timeout: float) -> subprocess.CompletedProcess:
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-dev-shm-usage", "--no-first-run", "--hide-scrollbars",
           f"--user-data-dir={profile}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
           "--virtual-time-budget=15000", *extra, url]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise CheckFailed(f"{Path(browser).name} did not finish within {timeout:.0f} s") from None
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # helpers (zygote, gpu) that outlive the browser
        except ProcessLookupError:
            pass
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def png_stats(path: Path) -> tuple[tuple[int, int], int, float]:
    """(size, distinct colours, share of the most common colour) of a PNG."""
    from PIL import Image

    with Image.open(path) as image:
        rgb = image.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 24) or []
        pixels = rgb.width * rgb.height
        top = max((count for count, _ in colours), default=0)
        return rgb.size, len(colours), (top / pixels if pixels else 1.0)


def png_problem(path: Path) -> str | None:
    """Why the screenshot is not a real page (missing, not a PNG, blank), or None."""
    if not path.is_file() or path.stat().st_size == 0:
        return f"no screenshot at {path}"
    if path.read_bytes()[:8] != b"\x89PNG\r\n\x1a\n":
        return f"{path} is not a PNG"
    _, colours, top_share = png_stats(path)
    if colours < MIN_COLOURS:
        return f"{path} is blank: {colours} distinct colours"
    if top_share > 0.995:
        return f"{path} is blank: one colour covers {top_share:.1%} of it"
    return None


def graph_part(dom: str) -> str:
    """The page from the asset graph's SVG on (the navigation tree before it names groups too)."""
    at = dom.find(GRAPH_SVG_MARKER)
    return dom[at:] if at >= 0 else ""


def labels_in(graph: str, names: set[str]) -> set[str]:
    return {name for name in names if f">{name}<" in graph}


def check_browser(browser: str, base: str, nodes: list[dict], groups: set[str],
                  expected: set[tuple[str, ...]], args: argparse.Namespace, report: Report,
                  tmp: Path) -> None:
    """Screenshot of the lineage page as people first see it, then the groups opened up."""
    screenshot = args.screenshot.resolve()
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    screenshot.unlink(missing_ok=True)
    url = f"{base}{GRAPH_PATH}"
    started = time.monotonic()
    shot = run_browser(browser, url, tmp / "chromium-profile", ["--dump-dom", f"--screenshot={screenshot}"],
                       timeout=args.browser_timeout)
    problem = png_problem(screenshot)
    if problem:
        raise CheckFailed(f"{problem} (chromium exit {shot.returncode}: "
                          f"{shot.stderr.decode(errors='replace')[-800:]})")
    size, colours, _ = png_stats(screenshot)
    report.ok(f"screenshot of {url} in {time.monotonic() - started:.1f} s: {screenshot} "
              f"({size[0]}x{size[1]}, {colours} colours)")

    graph = graph_part(shot.stdout.decode(errors="replace"))
    if not graph:
        raise CheckFailed(f"{url} has no asset graph (no {GRAPH_SVG_MARKER} element)")
    missing = sorted(groups - labels_in(graph, groups))
    if missing:
        raise CheckFailed(f"the asset graph at {url} lacks the groups {', '.join(missing)}")
    report.ok(f"the asset graph shows every asset group: {', '.join(sorted(groups))}")

    url = graph_url(base, nodes)
    dom = run_browser(browser, url, tmp / "chromium-profile", ["--dump-dom"],
                      timeout=args.browser_timeout).stdout.decode(errors="replace")
    names = {key[-1] for key in expected}
    shown = labels_in(graph_part(dom), names)
    if not shown:
        raise CheckFailed(f"with its groups expanded, the asset graph at {url} shows no asset node")
    report.ok(f"with the groups expanded, asset nodes render ({len(shown)} in the viewport, "
              f"e.g. {', '.join(sorted(shown)[:3])})")


# -- the check -------------------------------------------------------------------------------
def check(args: argparse.Namespace, report: Report, tmp: Path) -> None:
    from pipelines.demo import free_port, start_emulator, stop

    browser = None
    if not args.no_browser:
        browser = find_browser()
        if browser is None:
            raise CheckFailed("chromium is not installed: run scripts/system-deps.sh "
                              "(or apt-get install chromium), or pass --no-browser")

    emulator_port = free_port()
    core_url = f"http://127.0.0.1:{emulator_port}"
    env = pipeline_env(tmp, core_url)
    os.environ.update({k: env[k] for k in ("SALESFLOW_CORE_PHONE", "SALESFLOW_CORE_PASSWORD",
                                           "JWT_SECRET", "SALESFLOW_TIMEZONE") if k in env})
    prepare_dagster_home(tmp)
    workspace = prepare_workspace(tmp)

    emulator = dagster = None
    log = tmp / "dagster-dev.log"
    try:
        started = time.monotonic()
        (tmp / "emulator").mkdir()
        try:
            with output_to(tmp / "emulator.log"):
                emulator = start_emulator(emulator_port, state=tmp / "emulator" / "core.sqlite3")
        except SystemExit as exc:  # start_emulator's way of saying it did not come up
            raise CheckFailed(f"{exc}\n{tail(tmp / 'emulator.log')}") from None
        report.ok(f"emulator on {core_url} ({time.monotonic() - started:.1f} s)")

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        started = time.monotonic()
        dagster = start_dagster_dev(workspace, port, env, cwd=tmp, log=log)
        try:
            info = wait_for_webserver(base, dagster, time.monotonic() + args.timeout)
            report.ok(f"webserver answered {base}/server_info in {time.monotonic() - started:.1f} s "
                      f"(dagster-webserver {info.get('dagster_webserver_version', '?')})")

            entry = wait_for_location(base, dagster, time.monotonic() + args.timeout)
            loaded = entry["locationOrLoadError"]
            if loaded["__typename"] != "RepositoryLocation":
                raise CheckFailed(f"code location {LOCATION!r} failed to load: {loaded['__typename']}: "
                                  f"{(loaded.get('message') or '').strip()}\n{''.join(loaded.get('stack') or [])[-2000:]}")
            repos = ", ".join(r["name"] for r in loaded["repositories"])
            report.ok(f"code location {LOCATION!r} loaded in {time.monotonic() - started:.1f} s "
                      f"(repositories: {repos})")

            expected = expected_asset_keys()
            nodes = graphql(base, ASSET_NODES_QUERY)["assetNodes"]
            shown = {tuple(n["assetKey"]["path"]) for n in nodes}
            missing = sorted(expected - shown)
            if not expected:
                raise CheckFailed("pipelines.definitions.defs has no asset keys")
            if missing:
                raise CheckFailed(f"{len(missing)} of {len(expected)} asset keys missing from assetNodes: "
                                  + ", ".join("/".join(k) for k in missing[:20]))
            report.ok(f"all {len(expected)} asset keys of pipelines.definitions.defs are in assetNodes")

            if browser is None:
                report.info("browser check skipped (--no-browser)")
                return
            ours = [n for n in nodes if ((n.get("repository") or {}).get("location") or {}).get("name") == LOCATION]
            # groups of the location's own assets; upstream keys it only names (not executable)
            # sit in `default` and the group view leaves them out
            groups = {n["groupName"] for n in ours if n.get("groupName") and n.get("isExecutable")}
            graphql(base, NUX_SEEN_MUTATION)
            check_browser(browser, base, ours, groups, expected, args, report, tmp)
        except Exception:
            report.info(f"last lines of the dagster dev log (--keep keeps {log}):\n{tail(log)}")
            raise
    finally:
        if dagster is not None:
            started = time.monotonic()
            stop_group(dagster)
            report.info(f"stopped dagster dev in {time.monotonic() - started:.1f} s")
        if emulator is not None:
            stop(emulator)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--screenshot", type=Path,
                        default=Path(tempfile.gettempdir()) / "salesflow-ui-check" / "asset-graph.png",
                        help="where to write the PNG of the asset graph (default: %(default)s)")
    parser.add_argument("--no-browser", action="store_true",
                        help="only the webserver and GraphQL checks, no screenshot")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, state)")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds to wait for the webserver, and then for the code location")
    parser.add_argument("--browser-timeout", type=float, default=60.0)
    args = parser.parse_args(argv)

    def on_sigterm(signum, frame):  # run the clean-up in `finally` when stopped
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_sigterm)
    report = Report()
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="salesflow-ui-check-"))
    try:
        check(args, report, tmp)
    except CheckFailed as exc:
        report.fail(str(exc))
    except Exception as exc:  # an unexpected error is a failed check too, with its cause
        report.fail(f"{type(exc).__name__}: {exc}")
    finally:
        if args.keep:
            report.info(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    verdict = "FAILED" if report.failed else "passed"
    print(f"ui-check {verdict} in {time.monotonic() - started:.1f} s", flush=True)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
