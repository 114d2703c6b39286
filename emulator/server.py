"""HTTP face of the emulated SalesFlow core: the contract of JAVA_API.md, quirks included.

``create_app(state_path, ...)`` returns a Starlette application. Serve it with uvicorn with
``date_header=False`` (the emulator sends its own ``Date``, computed from its clock), as
:mod:`emulator.cli` and :mod:`emulator.testing` do.

Security as in the core's Spring configuration: only ``/api/v1/auth/login`` and
``/api/v1/auth/refresh`` are public; any other request without a valid bearer token
(missing, malformed, bad signature, expired, unknown user) gets Spring's default 403 body
``{"timestamp","status":403,"error":"Forbidden","path"}``. Sales routes and product/inventory
writes need the ADMIN role; a USER token gets 403 ``ACCESS_DENIED`` there.
"""

from __future__ import annotations

import asyncio
import logging
import re
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, Awaitable, Callable

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from emulator import dto
from emulator.auth import (
    REFRESH_TTL_S,
    TokenError,
    Tokens,
    accounts_from_env,
    jwt_secret_from_env,
)
from emulator.clock import (
    Clock,
    api_error_timestamp,
    http_date,
    java_instant,
    spring_error_timestamp,
)
from emulator.core import Core
from emulator.errors import (
    CoreError,
    SpringDefaultError,
    access_denied,
    internal_error,
    runtime_error,
)
from emulator.faults import HTTP_FAULTS, FaultInjector, Truncator, connection_of, is_cut, reset_connection
from emulator.state import State

log = logging.getLogger("emulator.server")

API = "/api/v1"
PUBLIC_PATHS = frozenset({f"{API}/auth/login", f"{API}/auth/refresh"})
JSON = "application/json"
TEXT = "text/plain;charset=UTF-8"

# Spring Security's StrictHttpFirewall rejects these in the raw path.
_REJECTED_RAW = re.compile(rb"%2f|%5c|%25|%2e|%3b|;|//|\\|%00", re.IGNORECASE)
_INT_RE = re.compile(r"^[+-]?\d+$")


def _json(obj: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(obj), status_code=status, media_type=JSON)


class EmulatorApp(Starlette):
    """The Starlette app plus the edge every request crosses first: latency, faults,
    the request firewall and the clock's ``Date`` header."""

    clock: Clock
    core: Core
    faults: FaultInjector
    latency_s: float

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        if self.latency_s > 0:
            await asyncio.sleep(self.latency_s)

        clock = self.clock

        async def send_dated(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"date"]
                headers.append((b"date", http_date(clock).encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        planned = self.faults.take_planned(scope.get("method", "GET"), scope.get("path", ""))
        try:
            await self._serve(scope, receive, send, send_dated, planned)
        finally:
            if planned is not None:
                planned.done.set()

    async def _serve(self, scope, receive, send, send_dated, planned) -> None:
        clock = self.clock
        fault = planned.kind if planned is not None else self.faults.draw(scope.get("method"))
        owner, transport = connection_of(send)
        if fault is not None and transport is None and fault in ("reset", "truncate"):
            fault = "http_500"  # no connection to drop outside uvicorn
        if fault == "reset":
            await reset_connection(owner, transport)
            return
        if fault in HTTP_FAULTS:
            err = internal_error()
            body = _error_body(clock, err, HTTP_FAULTS[fault])
            await _json(body, HTTP_FAULTS[fault])(scope, receive, send_dated)
            return
        hold = self.faults.timeout_s if fault == "hang" else 0.0
        if planned is not None:
            hold = planned.hold_s
            receive = await _buffered(receive)
            if planned.on_received is not None:
                await asyncio.to_thread(planned.on_received)
            if planned.on_applied is not None:
                send_dated = _before_answer(send_dated, planned.on_applied)
        elif fault == "hang":
            # The request is read first, as a stalled server would have done: the work is
            # still done after the stall, even when the client has given up meanwhile.
            receive = await _buffered(receive)
        if hold > 0:
            await asyncio.sleep(hold)

        raw_path = scope.get("raw_path") or scope.get("path", "").encode()
        if _REJECTED_RAW.search(raw_path.split(b"?", 1)[0]):
            body = _spring_body(clock, 400, "Bad Request", scope.get("path", ""))
            await _json(body, 400)(scope, receive, send_dated)
            return

        if fault == "truncate":
            cutter = Truncator(send_dated, owner, transport)
            try:
                await super().__call__(scope, receive, cutter)
            except BaseException as exc:  # noqa: BLE001 - re-raised unless it is our own cut
                if not (cutter.done and is_cut(exc)):
                    raise
            return
        await super().__call__(scope, receive, send_dated)


def _before_answer(send, callback):
    """``send`` that runs ``callback`` (in a thread) once the answer is ready, before it goes out."""

    async def wrapped(message: dict) -> None:
        if message["type"] == "http.response.start":
            await asyncio.to_thread(callback)
        await send(message)

    return wrapped


async def _buffered(receive):
    """Read the whole request body now; the returned ``receive`` replays it."""
    messages: list[dict] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        messages.append(message)
        if not message.get("more_body", False):
            break
    pending = iter(messages)

    async def replay() -> dict:
        for message in pending:
            return message
        return await receive()

    return replay


def _error_body(clock: Clock, err: CoreError, status: int | None = None) -> dict:
    return {
        "status": status or err.status,
        "code": err.code,
        "message": err.message,
        "timestamp": api_error_timestamp(clock),
        "details": err.details,
    }


def _spring_body(clock: Clock, status: int, error: str, path: str) -> dict:
    return {
        "timestamp": spring_error_timestamp(clock),
        "status": status,
        "error": error,
        "path": path,
    }


def _int_param(request: Request, name: str, default: int | None, *, java: str = "int") -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        if default is None:
            raise runtime_error(
                f"Required request parameter '{name}' for method parameter type "
                f"{'Long' if java == 'long' else 'int'} is not present"
            )
        return default
    bits = 63 if java == "long" else 31
    if _INT_RE.match(raw) and -(2**bits) <= int(raw) < 2**bits:
        return int(raw)
    raise runtime_error(
        f"Failed to convert value of type 'java.lang.String' to required type '{java}'; "
        f'For input string: "{raw}"'
    )


def _id_param(request: Request) -> int:
    raw = request.path_params["id"]
    if _INT_RE.match(raw) and -(2**63) <= int(raw) < 2**63:
        return int(raw)
    raise runtime_error(
        "Failed to convert value of type 'java.lang.String' to required type 'java.lang.Long'; "
        f'For input string: "{raw}"'
    )


def create_app(
    state_path,
    *,
    clock: Clock | None = None,
    fault_rate: float = 0.0,
    fault_seed: int | None = None,
    latency_ms: float = 0,
    token_ttl: float = 3600,
    fault_timeout_s: float = 10.0,
    jwt_secret: str | None = None,
    fault_kinds: list[str] | tuple[str, ...] | None = None,
    fault_methods: list[str] | tuple[str, ...] | None = None,
    live_rate: float | None = None,
    live_seed: int | None = None,
) -> Starlette:
    """The emulator app over the state file ``state_path`` (created when missing).

    Environment read here: ``JWT_SECRET``, ``SALESFLOW_CORE_PHONE``/``_PASSWORD`` (ADMIN),
    ``SALESFLOW_EMULATOR_USER_PHONE``/``_PASSWORD`` (USER), ``SALESFLOW_TIMEZONE`` (when no
    clock is given). ``fault_kinds`` restricts injected faults (default: all kinds), and
    ``fault_methods`` the HTTP methods they hit (default: all);
    ``live_rate`` (sales per minute) runs the live sales generator while the app is up.
    """
    clock = clock or Clock()
    secret = jwt_secret_from_env(jwt_secret)
    accounts = accounts_from_env()
    state = State(state_path)
    core = Core(state, clock)
    core.ensure_accounts(accounts)
    tokens = Tokens(secret, token_ttl)
    faults = FaultInjector(fault_rate, fault_seed, fault_kinds, fault_timeout_s, fault_methods)

    routes: list[Route] = []

    def user_for(request: Request) -> dict:
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer "):
            raise SpringDefaultError(403)
        try:
            claims = tokens.decode(header[7:].strip(), clock.timestamp())
        except TokenError:
            raise SpringDefaultError(403) from None
        user = core.user_by_phone(claims["sub"])
        if user is None:
            raise SpringDefaultError(403)
        return user

    def error_response(err: CoreError) -> Response:
        return _json(_error_body(clock, err), err.status)

    def spring_response(err: SpringDefaultError, request: Request) -> Response:
        return _json(_spring_body(clock, err.status, err.reason, request.url.path), err.status)

    Handler = Callable[[Request, Any], Awaitable[Response]]

    def route(path: str, method: str, auth: str | None = "any") -> Callable[[Handler], Handler]:
        def deco(fn: Handler) -> Handler:
            async def endpoint(request: Request) -> Response:
                try:
                    user = None
                    if auth is not None:
                        user = user_for(request)
                        if auth == "admin" and user["role"] != "ADMIN":
                            raise access_denied()
                    return await fn(request, user)
                except CoreError as err:
                    return error_response(err)
                except SpringDefaultError as err:
                    return spring_response(err, request)
                except ClientDisconnect:
                    return Response(status_code=400)  # nobody is listening any more

            routes.append(Route(API + path, endpoint, methods=[method], name=f"{method} {path}"))
            return fn

        return deco

    async def body_json(request: Request) -> Any:
        return dto.parse_json_body(await request.body(), request.headers.get("content-type"))

    db = run_in_threadpool

    # -- auth ------------------------------------------------------------------------------
    def auth_response(user: dict, message: str) -> dict:
        now = clock.timestamp()
        return {
            "accessToken": tokens.access_token(user["phoneNumber"], user["role"], user["username"], now),
            "refreshToken": tokens.refresh_token(user["phoneNumber"], now),
            "refreshExpiresAt": java_instant(clock.utcnow() + timedelta(seconds=REFRESH_TTL_S)),
            "tokenType": "Bearer",
            "message": message,
            "user": {k: user[k] for k in ("id", "phoneNumber", "username", "email", "role", "createdAt", "updatedAt")},
        }

    @route("/auth/login", "POST", auth=None)
    async def login(request: Request, _user) -> Response:
        req = dto.login_input(await body_json(request))
        user = await db(core.authenticate, req.phone_number, req.password)
        if user is None:
            raise runtime_error("Invalid phone number or password")
        return _json(auth_response(user, "Login successful"))

    @route("/auth/refresh", "POST", auth=None)
    async def refresh(request: Request, _user) -> Response:
        token = dto.refresh_input(await body_json(request))
        empty = {"accessToken": None, "refreshToken": None, "refreshExpiresAt": None, "tokenType": None}
        if dto.is_blank(token):
            return _json({**empty, "message": "Refresh token is required", "user": None}, 400)
        # The core looks the token up in a table its login never fills: 401 for every token.
        return _json({**empty, "message": "Invalid refresh token", "user": None}, 401)

    @route("/auth/me", "GET")
    async def me(request: Request, user) -> Response:
        return _json({"username": user["username"], "role": user["role"], "phoneNumber": user["phoneNumber"]})

    # -- products --------------------------------------------------------------------------
    @route("/products", "GET")
    async def products(request: Request, _user) -> Response:
        return _json(await db(core.list_products))

    @route("/products/low-stock", "GET")
    async def low_stock(request: Request, _user) -> Response:
        return _json(await db(core.low_stock_products))

    @route("/products/by-id/{id}", "GET")
    async def product_by_id(request: Request, _user) -> Response:
        return _json(await db(core.get_product, "id", _id_param(request)))

    for by in ("sku", "name"):

        def _bind(by: str) -> None:
            @route(f"/products/by-{by}/{{{by}}}", "GET")
            async def get_product(request: Request, _user) -> Response:
                return _json(await db(core.get_product, by, request.path_params[by]))

            @route(f"/products/by-{by}/{{{by}}}", "PUT", auth="admin")
            async def put_product(request: Request, _user) -> Response:
                p = dto.product_input(await body_json(request))
                return _json(await db(core.update_product, by, request.path_params[by], p))

            @route(f"/products/by-{by}/{{{by}}}", "DELETE", auth="admin")
            async def delete_product(request: Request, _user) -> Response:
                await db(core.delete_product, by, request.path_params[by])
                return Response(status_code=204)

        _bind(by)

    @route("/products", "POST", auth="admin")
    async def create_product(request: Request, _user) -> Response:
        p = dto.product_input(await body_json(request))
        return _json(await db(core.create_product, p), 201)

    # -- inventory -------------------------------------------------------------------------
    @route("/inventory", "GET")
    async def inventory(request: Request, _user) -> Response:
        return _json(await db(core.list_inventory))

    for by in ("id", "sku", "name"):

        def _bind_item(by: str) -> None:
            def key(request: Request):
                return _id_param(request) if by == "id" else request.path_params[by]

            @route(f"/inventory/by-{by}/{{{by}}}", "GET")
            async def get_item(request: Request, _user) -> Response:
                return _json(await db(core.get_item, by, key(request)))

            @route(f"/inventory/by-{by}/{{{by}}}", "PUT", auth="admin")
            async def put_item(request: Request, _user) -> Response:
                k = key(request)
                req = dto.inventory_input(await body_json(request))
                return _json(await db(core.update_item, by, k, req))

            @route(f"/inventory/by-{by}/{{{by}}}", "DELETE", auth="admin")
            async def delete_item(request: Request, _user) -> Response:
                await db(core.delete_item, by, key(request))
                return Response("Item deleted successfully.", media_type=TEXT)

        _bind_item(by)

    @route("/inventory/adjust/by-sku/{sku}", "PATCH", auth="admin")
    async def adjust_item(request: Request, _user) -> Response:
        req = dto.adjust_input(await body_json(request))
        return _json(await db(core.adjust_item, "sku", request.path_params["sku"], req))

    # -- sales -----------------------------------------------------------------------------
    def stream(query) -> Response:
        return StreamingResponse(core.stream_sales_json(query), media_type=JSON)

    @route("/sales", "GET", auth="admin")
    async def all_sales(request: Request, _user) -> Response:
        return stream(core.all_sales_query())

    @route("/sales/history", "GET", auth="admin")
    async def history(request: Request, _user) -> Response:
        return stream(core.history_query(_int_param(request, "days", 90)))

    @route("/sales/today", "GET", auth="admin")
    async def today(request: Request, _user) -> Response:
        return stream(core.today_query())

    @route("/sales/recent", "GET", auth="admin")
    async def recent(request: Request, _user) -> Response:
        return stream(core.recent_query(_int_param(request, "limit", 100)))

    @route("/sales/history/by-sku/{sku}", "GET", auth="admin")
    async def product_history(request: Request, _user) -> Response:
        days = _int_param(request, "days", 90)
        return _json(await db(core.product_sales_history, request.path_params["sku"], days))

    @route("/sales", "POST", auth="admin")
    async def create_sale(request: Request, _user) -> Response:
        sale = dto.sale_input(await body_json(request))
        return _json(await db(core.create_sale, sale), 201)

    @route("/sales/bulk", "POST", auth="admin")
    async def bulk(request: Request, _user) -> Response:
        sales = dto.bulk_sales_input(await body_json(request))
        await db(core.bulk_create_sales, sales)
        return Response("Bulk sales imported successfully", media_type=TEXT)

    # -- sync ------------------------------------------------------------------------------
    @route("/sync/download", "GET")
    async def sync_download(request: Request, _user) -> Response:
        since = _int_param(request, "lastSyncTimestamp", None, java="long")
        return _json(await db(core.sync_download, since))

    # -- errors outside the handlers -------------------------------------------------------
    async def http_exception(request: Request, exc: HTTPException) -> Response:
        if request.url.path not in PUBLIC_PATHS:
            try:
                user_for(request)
            except SpringDefaultError as err:
                return spring_response(err, request)
        if exc.status_code == 405:
            err = CoreError(405, "METHOD_NOT_ALLOWED", f"Request method '{request.method}' is not supported")
        elif exc.status_code == 404:
            err = CoreError(404, "NOT_FOUND", f"No endpoint {request.method} {request.url.path}.")
        else:
            err = CoreError(exc.status_code, "RUNTIME_ERROR", str(exc.detail))
        return error_response(err)

    async def server_error(request: Request, exc: Exception) -> Response:
        if is_cut(exc):
            return Response(status_code=500)
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(internal_error())

    live_thread = None

    @asynccontextmanager
    async def lifespan(app):
        nonlocal live_thread
        if live_rate:
            from emulator.live import LiveSales

            live_thread = LiveSales(core, live_rate, seed=live_seed)
            live_thread.start()
        try:
            yield
        finally:
            if live_thread is not None:
                live_thread.stop()
            state.close()

    app = EmulatorApp(
        routes=routes,
        exception_handlers={HTTPException: http_exception, Exception: server_error},
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False
    app.clock = clock
    app.core = core
    app.faults = faults
    app.latency_s = max(float(latency_ms), 0.0) / 1000.0
    app.state.core = core
    app.state.clock = clock
    app.state.faults = faults
    app.state.tokens = tokens
    app.state.state_path = state.path
    return app

