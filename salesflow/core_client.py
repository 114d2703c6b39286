"""HTTP client of the SalesFlow core (see JAVA_API.md).

It logs in with the configured ADMIN account, reuses the token, logs in again when the
core rejects a token it issued earlier (the core answers 403, not 401, for an expired
token), and retries 5xx answers, timeouts and broken connections with exponential
backoff and jitter (tenacity). Credentials and tokens never appear in logs or errors: whatever
the core sends back is redacted of them (``CoreClient._redact``) before it reaches an error.
"""

from __future__ import annotations

import html
import json
import logging
import re
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus
from zoneinfo import ZoneInfo

import httpx
import jwt
import orjson
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from salesflow.errors import CoreApiError, CoreAuthError, CoreDataError

API = "/api/v1"
RETRY_STATUSES = frozenset({500, 502, 503, 504})
REDACTED = "[redacted]"
MESSAGE_CHARS = 300
_log = logging.getLogger("salesflow.core")


class _RetryableStatus(Exception):
    def __init__(self, status: int, path: str):
        super().__init__(f"core answered HTTP {status} for {path}")
        self.status = status


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, (_RetryableStatus, httpx.TransportError))


@dataclass
class Download:
    path: Path
    bytes: int
    seconds: float
    server_date: datetime | None


@dataclass
class ClientStats:
    requests: int = 0
    retries: int = 0
    logins: int = 0
    bytes_received: int = 0
    errors: list[str] = field(default_factory=list)


class WriteOutcomeUnknown(CoreApiError):
    """A write that may have reached the core got no answer (timeout, broken connection, 5xx):
    it may still be applied later. Look for its effect before sending it again."""


# failures that happen before a request leaves: the core cannot have seen it
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


class CoreClient:
    def __init__(
        self,
        base_url: str,
        phone: str,
        password: str,
        *,
        timeout_s: float = 30.0,
        write_timeout_s: float = 120.0,
        write_settle_s: float | None = None,
        connect_timeout_s: float = 5.0,
        max_attempts: int = 8,
        max_elapsed_s: float = 300.0,
        backoff_s: float = 0.25,
        backoff_max_s: float = 8.0,
        timezone: str = "UTC",
        logger: logging.Logger | Any | None = None,
        transport: httpx.BaseTransport | None = None,
    ):
        if not base_url:
            raise CoreApiError("the core's URL is not configured (SALESFLOW_CORE_URL)")
        if not phone or not password:
            raise CoreAuthError(
                "the core account is not configured "
                "(SALESFLOW_CORE_PHONE and SALESFLOW_CORE_PASSWORD)"
            )
        self.base_url = base_url.rstrip("/")
        # Writes wait longer than reads; a write without an answer is awaited (its effect
        # looked for) until write_settle_s after it was sent, which must outlast the timeout.
        self.write_timeout = httpx.Timeout(write_timeout_s, connect=connect_timeout_s)
        self.write_settle_s = write_settle_s if write_settle_s is not None else write_timeout_s + 60.0
        if self.write_settle_s <= write_timeout_s:
            raise ValueError(f"the write settle window ({self.write_settle_s}s) must be longer than "
                             f"the write timeout ({write_timeout_s}s)")
        self._phone = phone
        self._password = password
        self.max_attempts = max_attempts
        self.max_elapsed_s = max_elapsed_s
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.tz = ZoneInfo(timezone)
        self.log = logger or _log
        self.stats = ClientStats()
        self._token: str | None = None
        self._secrets: set[str] = {phone, password}  # everything _redact removes
        self._token_deadline: float | None = None
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
            transport=transport,
            headers={"Accept": "application/json"},
            follow_redirects=False,
        )
        self.last_server_date: datetime | None = None

    def __repr__(self) -> str:
        return f"CoreClient({self.base_url!r})"

    # -- lifecycle -------------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "CoreClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- auth ------------------------------------------------------------------
    def login(self) -> None:
        def attempt():
            self.stats.requests += 1
            resp = self._http.post(
                f"{API}/auth/login",
                content=orjson.dumps({"phoneNumber": self._phone, "password": self._password}),
                headers={"Content-Type": "application/json"},
            )
            self._note_date(resp)
            if resp.status_code in RETRY_STATUSES:
                raise _RetryableStatus(resp.status_code, "/auth/login")
            return resp

        resp = self._retrying("POST /auth/login")(attempt)
        if resp.status_code != 200:
            code, message = self._server_error(resp)
            raise CoreAuthError(
                f"login to the core was refused (HTTP {resp.status_code}"
                f"{', ' + code if code else ''}{': ' + message if message else ''}): "
                "check SALESFLOW_CORE_PHONE and SALESFLOW_CORE_PASSWORD",
                status=resp.status_code,
                code=code,
            )
        try:
            answer = orjson.loads(resp.content)
            token = answer["accessToken"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise CoreDataError("login answer has no accessToken field") from None
        refresh = answer.get("refreshToken")
        self._secrets.update(s for s in (token, refresh) if isinstance(s, str) and s)
        self._token = token
        lifetime = _token_lifetime(token)
        # The core's clock may differ from ours: count the lifetime from our own clock.
        self._token_deadline = (
            time.monotonic() + max(lifetime - min(30.0, lifetime / 4), 0.0)
            if lifetime is not None
            else None
        )
        self.stats.logins += 1

    def _auth_header(self) -> tuple[dict[str, str], bool]:
        """The Authorization header, and whether the token was issued just now."""
        fresh = False
        if self._token is None or (
            self._token_deadline is not None and time.monotonic() >= self._token_deadline
        ):
            self.login()
            fresh = True
        return {"Authorization": f"Bearer {self._token}"}, fresh

    # -- requests --------------------------------------------------------------
    def _retrying(self, what: str, attempts: int | None = None) -> Retrying:
        attempts = attempts or self.max_attempts

        def before_sleep(state: RetryCallState) -> None:
            self.stats.retries += 1
            exc = state.outcome.exception() if state.outcome else None
            reason = _describe(exc)
            self.stats.errors.append(reason)
            self.log.warning(
                f"{what}: {reason}; retry {state.attempt_number}/{attempts - 1} "
                f"in {state.next_action.sleep:.2f}s"
            )

        return Retrying(
            retry=retry_if_exception(_is_retryable),
            stop=stop_after_attempt(attempts) | stop_after_delay(self.max_elapsed_s),
            wait=wait_random_exponential(multiplier=self.backoff_s, max=self.backoff_max_s),
            before_sleep=before_sleep,
            reraise=True,
        )

    def _call(self, what: str, send, *, attempts: int | None = None) -> Any:
        """Run ``send(headers)`` with auth recovery and retries; map failures to CoreApiError."""
        attempts = attempts or self.max_attempts

        def attempt():
            relogged = False
            while True:
                headers, fresh = self._auth_header()
                self.stats.requests += 1
                result = send(headers)
                status = result[0]
                if status in (401, 403) and not (fresh or relogged):
                    # An expired token gets 403 from the core: log in again once.
                    self._token = None
                    relogged = True
                    continue
                if status in (401, 403):
                    raise CoreAuthError(
                        f"{what}: the core refused a fresh token (HTTP {status}); "
                        "the pipeline's account needs the ADMIN role",
                        status=status,
                    )
                if status in RETRY_STATUSES:
                    raise _RetryableStatus(status, what)
                return result

        try:
            return self._retrying(what, attempts)(attempt)
        except _RetryableStatus as exc:
            raise CoreApiError(
                f"{what}: core kept answering HTTP {exc.status} after {attempts} attempt(s)",
                status=exc.status,
            ) from None
        except httpx.TransportError as exc:
            raise CoreApiError(
                f"{what}: core unreachable after {attempts} attempt(s) ({_describe(exc)})"
            ) from None

    def get_bytes(self, path: str, params: dict | None = None) -> bytes:
        """GET a (small) JSON answer's raw bytes, after auth recovery and retries."""
        what = f"GET {path}"

        def send(headers):
            resp = self._http.get(f"{API}{path}", params=params, headers=headers)
            self._note_date(resp)
            return resp.status_code, resp

        _, resp = self._call(what, send)
        self._raise_for_error(what, resp)
        self.stats.bytes_received += len(resp.content)
        return resp.content

    def get_json(self, path: str, params: dict | None = None) -> Any:
        """GET and parse a JSON document. Malformed JSON is a CoreDataError."""
        data = self.get_bytes(path, params)
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise CoreDataError(f"GET {path}: malformed JSON from the core ({exc})") from None

    def download(self, path: str, dest: Path, params: dict | None = None) -> Download:
        """Stream a (large) JSON answer to ``dest``; a cut-off body is retried from scratch."""
        what = f"GET {path}"
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)

        def send(headers):
            started = time.perf_counter()
            with self._http.stream("GET", f"{API}{path}", params=params, headers=headers) as resp:
                self._note_date(resp)
                if resp.status_code != 200:
                    resp.read()
                    return resp.status_code, resp, 0, 0.0
                n = 0
                with open(dest, "wb") as fh:
                    for chunk in resp.iter_bytes(1 << 20):
                        fh.write(chunk)
                        n += len(chunk)
                return resp.status_code, resp, n, time.perf_counter() - started

        _, resp, n, seconds = self._call(what, send)
        self._raise_for_error(what, resp)
        self.stats.bytes_received += n
        return Download(dest, n, seconds, self.last_server_date)

    def post_json(self, path: str, body: Any, *, retry: bool = False) -> httpx.Response:
        """POST a JSON body. Writes are not retried unless the caller says they are idempotent."""
        return self._write("POST", path, body, retry=retry)

    def put_json(self, path: str, body: Any, *, retry: bool = True) -> httpx.Response:
        """PUT a JSON body: a full replace in the core, idempotent, so retried like a read."""
        return self._write("PUT", path, body, retry=retry)

    def _write(self, method: str, path: str, body: Any, *, retry: bool) -> httpx.Response:
        """Send a write with the write timeout. Unless retried (``retry``: the caller says it is
        idempotent), a write that may have reached the core without an answer raises
        :class:`WriteOutcomeUnknown`; one that cannot have left raises CoreApiError."""
        what = f"{method} {path}"
        lost: list[BaseException] = []

        def send(headers):
            try:
                resp = self._http.request(
                    method,
                    f"{API}{path}",
                    content=orjson.dumps(body),
                    headers={**headers, "Content-Type": "application/json"},
                    timeout=self.write_timeout,
                )
            except httpx.TransportError as exc:
                lost.append(exc)
                raise
            self._note_date(resp)
            return resp.status_code, resp

        try:
            _, resp = self._call(what, send, attempts=None if retry else 1)
            self._raise_for_error(what, resp)
        except CoreApiError as exc:
            no_answer = exc.status is None and bool(lost) and not isinstance(lost[-1], _NOT_SENT)
            if no_answer or (exc.status or 0) >= 500:
                raise WriteOutcomeUnknown(f"{exc}; the core may still apply it",
                                          status=exc.status, code=exc.code) from None
            raise
        return resp

    # -- helpers ---------------------------------------------------------------
    def _note_date(self, resp: httpx.Response) -> None:
        value = resp.headers.get("date")
        if value:
            try:
                self.last_server_date = parsedate_to_datetime(value)
            except (TypeError, ValueError):
                pass

    def server_now(self) -> datetime:
        """The core's wall time in the shop's timezone, naive as the core stamps sales, from the
        Date header of its latest answer (asked for when there is none yet)."""
        if self.last_server_date is None:
            self.get_json("/auth/me")
        stamp = self.last_server_date or datetime.now(tz=self.tz)
        return stamp.astimezone(self.tz).replace(tzinfo=None)

    def server_today(self) -> date:
        """The core's calendar day in the shop's timezone, from its Date header."""
        return self.server_now().date()

    def _raise_for_error(self, what: str, resp: httpx.Response) -> None:
        if resp.status_code < 400:
            return
        code, message = self._server_error(resp)
        raise CoreApiError(
            f"{what}: HTTP {resp.status_code}{' ' + code if code else ''}"
            f"{': ' + message if message else ''}",
            status=resp.status_code,
            code=code,
        )

    def _server_error(self, resp: httpx.Response) -> tuple[str | None, str]:
        """The error body's code and its words (message, details, error, path), redacted."""
        code, message = _error_parts(resp)

        def clean(text: str) -> str:  # redacted before anything can change a secret's spelling
            return " ".join(self._redact(text).split())[:MESSAGE_CHARS]

        return (clean(code) or None) if code else None, clean(message)

    def _redact(self, text: str) -> str:
        """``text`` from the core without this client's phone, password or tokens, in any of
        the forms a server might echo them (raw, JSON-escaped, URL- or HTML-encoded)."""
        forms = {f for secret in self._secrets if secret for f in _secret_forms(secret)}
        if not forms:
            return text
        pattern = "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))
        return re.sub(pattern, REDACTED, text, flags=re.IGNORECASE)


def _error_parts(resp: httpx.Response) -> tuple[str | None, str]:
    """``(code, words)`` of a core error body; words join message, details, error and path."""
    try:
        body = orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        return None, ""
    if not isinstance(body, dict):
        return None, ""
    code = body.get("code") or body.get("error")
    details = body.get("details")
    if isinstance(details, dict):
        details = "; ".join(f"{k}: {v}" for k, v in details.items())
    parts = [body.get("message"), details, None if code == body.get("error") else body.get("error")]
    words = " - ".join(str(p) for p in parts if p)
    if body.get("path"):
        words += f" (at {body['path']})"
    return (str(code) if code else None), words


def _secret_forms(secret: str) -> set[str]:
    forms = {secret, quote(secret, safe=""), quote(secret), quote_plus(secret), html.escape(secret),
             json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    digits = re.sub(r"\D", "", secret)
    if secret.startswith("+") and len(digits) >= 6:  # a phone number is also echoed without its +
        forms.add(digits)
    return {f for f in forms if f}


def _token_lifetime(token: str) -> float | None:
    """Seconds between the token's iat and exp claims (read, not verified: the core verifies)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    exp, iat = claims.get("exp"), claims.get("iat")
    if isinstance(exp, (int, float)) and isinstance(iat, (int, float)) and exp > iat:
        return float(exp - iat)
    return None


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    if isinstance(exc, _RetryableStatus):
        return f"HTTP {exc.status}"
    return type(exc).__name__
