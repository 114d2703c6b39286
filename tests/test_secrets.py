"""No secret of the pipeline's core account reaches a Dagster run's records, whatever the core echoes."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from assets.extract import raw_products
from emulator.testing import uvicorn_config
from resources import CoreApiResource, WarehouseResource
from tests.test_core_client import ODD_PASSWORD, PHONE, _forms, echoing_core

# In-process runs always honour the asset's retry policy (20 s and more between attempts): the
# 4xx case runs the same asset function once, without it.
RAW_PRODUCTS_ONCE = dg.asset(key=raw_products.key)(raw_products.op.compute_fn.decorated_fn)


def echo_app(password: str) -> tuple[Starlette, list[str]]:
    """The echoing core of test_core_client on a real socket; also notes every token it issues."""
    handler, issued = echoing_core(password), []

    async def endpoint(request):
        req = httpx.Request(request.method, str(request.url), headers=request.headers.raw,
                            content=await request.body())
        resp = handler(req)
        if req.url.path.endswith("/auth/login") and resp.status_code == 200:
            issued.append(resp.json()["accessToken"])
        return Response(resp.content, status_code=resp.status_code, media_type="application/json")

    route = Route("/{path:path}", endpoint, methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    return Starlette(routes=[route]), issued


@contextmanager
def serving(app):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn_config(app))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


def every_byte_under(folder: Path) -> str:
    return "\n".join(p.read_bytes().decode("utf-8", "replace") for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize("refused", ["products", "login"])
def test_no_secret_in_the_run_records_when_the_core_echoes_requests(refused, tmp_path, capfd, caplog):
    # "login": the core refuses the account and echoes the phone and password it was sent
    app, issued = echo_app(ODD_PASSWORD if refused == "products" else "not the pipeline's password")
    home = tmp_path / "dagster_home"
    home.mkdir()
    with serving(app) as url, dg.DagsterInstance.local_temp(str(home)) as instance:
        core = CoreApiResource(base_url=url, phone=PHONE, password=ODD_PASSWORD,
                               max_attempts=2, backoff_s=0.01, backoff_max_s=0.02)
        asset = RAW_PRODUCTS_ONCE if refused == "products" else raw_products  # a refused login is not retried
        result = dg.materialize([asset], instance=instance, raise_on_error=False,
                                resources={"core": core,
                                           "warehouse": WarehouseResource(database=str(tmp_path / "w.duckdb"))})
        assert not result.success
        failure = result.get_step_failure_events()[0].step_failure_data.error
        records = instance.all_logs(result.run_id)
        run = instance.get_run_by_id(result.run_id)
    assert (len(issued) == 1) == (refused == "products")
    failure_text = f"{failure.to_string()}"
    assert ("HTTP 400 RUNTIME_ERROR" if refused == "products" else "login to the core was refused") \
        in failure_text, failure_text
    out = capfd.readouterr()
    texts = {
        "step failure": failure_text,
        "event log": "\n".join(dg.serialize_value(r) for r in records) + dg.serialize_value(run),
        "captured output": out.out + out.err + caplog.text,
        "instance files (event log database, compute logs)": every_byte_under(home),
    }
    secrets = {s: _forms(s) for s in (PHONE, PHONE[1:], ODD_PASSWORD, "rt-7f3a9c1e-55aa-4c2b-9e0d-secret", *issued)}
    for where, text in texts.items():
        leaks = [form for forms in secrets.values() for form in forms if form in text]
        assert not leaks, f"{where} holds {leaks}"
    # the core's words are kept, its echo of secrets is not
    assert all("[redacted]" in texts[k] for k in ("step failure", "event log", "captured output"))
    assert "[redacted]" in texts["instance files (event log database, compute logs)"]
