"""CoreClient behaviour against scripted answers: retries, re-login, secrets kept out."""

import logging
import time

import httpx
import jwt
import orjson
import pytest

from salesflow.core_client import CoreClient
from salesflow.errors import CoreApiError, CoreAuthError, CoreDataError

PHONE, PASSWORD = "+15559990000", "s3cret-Passw0rd"


def token(ttl=3600, n=0):
    now = int(time.time())
    return jwt.encode({"sub": PHONE, "iss": "salesflow-app", "role": "ADMIN", "iat": now,
                       "exp": now + ttl, "n": n}, "k" * 32, algorithm="HS256")


class Core:
    """A scripted core: ``script`` maps a path to a list of answers consumed in order."""

    def __init__(self, script=None, ttl=3600):
        self.script = script or {}
        self.ttl = ttl
        self.logins = 0
        self.seen_tokens = []
        self.calls = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.calls.append(path)
        if path == "/api/v1/auth/login":
            body = orjson.loads(request.content)
            if body["password"] != PASSWORD:
                return httpx.Response(400, json={"status": 400, "code": "RUNTIME_ERROR",
                                                 "message": "Invalid credentials"})
            self.logins += 1
            return httpx.Response(200, json={"accessToken": token(self.ttl, self.logins),
                                             "tokenType": "Bearer"})
        self.seen_tokens.append(request.headers.get("authorization"))
        answers = self.script.get(path, [])
        answer = answers.pop(0) if len(answers) > 1 else (answers[0] if answers else 200)
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            return answer(request)
        if isinstance(answer, int):
            return httpx.Response(answer, json=[] if answer == 200 else {"status": answer})
        return answer


def client(core, **kw):
    kw.setdefault("backoff_s", 0.001)
    kw.setdefault("backoff_max_s", 0.002)
    return CoreClient("http://core.test", PHONE, kw.pop("password", PASSWORD),
                      transport=httpx.MockTransport(core), **kw)


def test_logs_in_once_and_reuses_token():
    core = Core({"/api/v1/products": [httpx.Response(200, json=[{"id": 1}])]})
    with client(core) as c:
        assert c.get_json("/products") == [{"id": 1}]
        assert c.get_json("/products") == [{"id": 1}]
    assert core.logins == 1
    assert core.seen_tokens[0] == core.seen_tokens[1] and core.seen_tokens[0].startswith("Bearer ")


def test_retries_5xx_and_connection_errors():
    req = httpx.Request("GET", "http://core.test/api/v1/products")
    core = Core({"/api/v1/products": [503, httpx.ConnectError("reset", request=req), 502,
                                      httpx.ReadTimeout("slow", request=req),
                                      httpx.Response(200, json=[1, 2])]})
    with client(core) as c:
        assert c.get_json("/products") == [1, 2]
        assert c.stats.retries == 4


def test_gives_up_with_clear_error_after_max_attempts():
    core = Core({"/api/v1/products": [500]})
    with client(core, max_attempts=3) as c, pytest.raises(CoreApiError, match=r"HTTP 500 after 3 attempt\(s\)"):
        c.get_json("/products")
    assert core.calls.count("/api/v1/products") == 3


def test_client_errors_are_not_retried():
    core = Core({"/api/v1/products/by-sku/X": [httpx.Response(404, json={
        "status": 404, "code": "NOT_FOUND", "message": "Product not found"})]})
    with client(core) as c, pytest.raises(CoreApiError, match="404 NOT_FOUND: Product not found"):
        c.get_json("/products/by-sku/X")
    assert core.calls.count("/api/v1/products/by-sku/X") == 1


def test_expired_token_403_logs_in_again_once():
    core = Core({"/api/v1/sales": [403, httpx.Response(200, json=[])]})
    with client(core) as c:
        c.login()
        assert c.get_json("/sales") == []
    assert core.logins == 2
    assert core.seen_tokens[0] != core.seen_tokens[1]


def test_fresh_token_refused_means_missing_role():
    core = Core({"/api/v1/sales": [403]})
    with client(core) as c, pytest.raises(CoreAuthError, match="needs the ADMIN role"):
        c.get_json("/sales")
    assert core.logins == 1  # a token issued for this very call was refused: no second login


def test_token_renewed_before_it_expires():
    core = Core(ttl=4)  # renew at 3/4 of the lifetime (3 s)
    with client(core) as c:
        c.get_json("/products")
        time.sleep(3.2)
        c.get_json("/products")
    assert core.logins == 2


def test_wrong_password_is_reported_without_the_password(caplog):
    core = Core()
    caplog.set_level(logging.DEBUG)
    with client(core, password="wrong-pass-123") as c, pytest.raises(CoreAuthError) as err:
        c.get_json("/products")
    assert "SALESFLOW_CORE_PASSWORD" in str(err.value)
    assert "wrong-pass-123" not in str(err.value) and "wrong-pass-123" not in caplog.text


def test_no_secret_in_logs_or_errors_during_retries(caplog):
    caplog.set_level(logging.DEBUG)
    core = Core({"/api/v1/sales": [503]})
    with client(core, max_attempts=3) as c, pytest.raises(CoreApiError) as err:
        c.get_json("/sales")
    text = caplog.text + str(err.value) + repr(c)
    assert PASSWORD not in text and "eyJ" not in text and PHONE not in text


def test_malformed_json_is_a_data_error():
    core = Core({"/api/v1/products": [httpx.Response(200, content=b"[{]")]})
    with client(core) as c, pytest.raises(CoreDataError, match="malformed JSON"):
        c.get_json("/products")


def test_download_retries_a_cut_off_body(tmp_path):
    req = httpx.Request("GET", "http://core.test/api/v1/sales")
    core = Core({"/api/v1/sales": [httpx.RemoteProtocolError("incomplete chunked read", request=req),
                                   httpx.Response(200, content=b"[1,2,3]",
                                                  headers={"Date": "Tue, 03 Jun 2025 23:30:00 GMT"})]})
    with client(core, timezone="Europe/Paris") as c:
        d = c.download("/sales", tmp_path / "s.json")
        assert d.path.read_bytes() == b"[1,2,3]" and d.bytes == 7
        # 23:30 GMT is already the next day in Paris
        assert str(c.server_today()) == "2025-06-04"


def test_writes_are_not_retried_by_default():
    core = Core({"/api/v1/sales/bulk": [503, httpx.Response(200, text="ok")]})
    with client(core) as c, pytest.raises(CoreApiError):
        c.post_json("/sales/bulk", [])
    assert core.calls.count("/api/v1/sales/bulk") == 1


def test_missing_configuration_is_clear():
    with pytest.raises(CoreAuthError, match="SALESFLOW_CORE_PHONE"):
        CoreClient("http://x", "", "")
    with pytest.raises(CoreApiError, match="SALESFLOW_CORE_URL"):
        CoreClient("", PHONE, PASSWORD)


# -- a core that echoes what it receives ------------------------------------------------------
ODD_PASSWORD = 'pa"ss/wörd+1 &<x>'  # changes under JSON escaping, URL and HTML encoding
REFRESH = "rt-7f3a9c1e-55aa-4c2b-9e0d-secret"


def _forms(secret):
    import html
    import json
    from urllib.parse import quote, quote_plus

    return {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1],
            quote(secret, safe=""), quote(secret, safe="").lower(), quote_plus(secret), html.escape(secret)}


def echoing_core(password):
    """Answers every call but a good login with 400, echoing the request in every error field."""
    from urllib.parse import urlencode

    def answer(request: httpx.Request) -> httpx.Response:
        body = request.content.decode()
        if request.url.path == "/api/v1/auth/login" and orjson.loads(body)["password"] == password:
            return httpx.Response(200, json={"accessToken": token(), "refreshToken": REFRESH,
                                             "tokenType": "Bearer"})
        auth = request.headers.get("authorization", "")
        issued = (auth.removeprefix("Bearer "), REFRESH) if auth else ()  # tokens it gave out
        secrets = [PHONE, password, *issued]
        every_form = " ".join(f for s in secrets for f in _forms(s))
        return httpx.Response(400, json={
            "status": 400, "code": f"RUNTIME_ERROR {auth} {body}",
            "message": f"bad request; Authorization: {auth}; body: {body}; {every_form}",
            "details": {"authorization": auth, "body": body, "forms": every_form,
                        "form": urlencode({"phone": PHONE, "password": password})},
            "error": f"{auth} {body}", "path": f"/api/v1/x?{urlencode({'p': password, 't': REFRESH})}",
        })

    return answer


def assert_no_secret(text, password=ODD_PASSWORD, tokens=()):
    leaks = [f for s in (PHONE, password, REFRESH, PHONE[1:], *tokens) for f in _forms(s) if f in text]
    assert not leaks, f"secret forms {leaks} leaked into: {text}"


@pytest.mark.parametrize("call", ["get_json", "download", "post_json", "put_json"])
def test_echoed_secrets_are_redacted_from_errors_and_logs(call, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    core = echoing_core(ODD_PASSWORD)
    with client(core, password=ODD_PASSWORD) as c:
        with pytest.raises(CoreApiError) as err:
            if call == "download":
                c.download("/sales", tmp_path / "s.json")
            elif call == "get_json":
                c.get_json("/products")
            else:
                getattr(c, call)("/products/by-sku/A", {"sku": "A", "note": ODD_PASSWORD})
        issued = c._token
    text = f"{err.value} {err.value.code} {err.value!r} {caplog.text}"
    assert issued and "HTTP 400" in text and "RUNTIME_ERROR" in text
    assert "[redacted]" in text and "bad request" in text  # the server's words stay readable
    assert_no_secret(text, tokens=[issued])


def test_echoed_secrets_are_redacted_from_a_refused_login(caplog):
    caplog.set_level(logging.DEBUG)
    with client(echoing_core("another password"), password=ODD_PASSWORD) as c:
        with pytest.raises(CoreAuthError) as err:
            c.get_json("/products")
    text = f"{err.value} {err.value.code} {caplog.text}"
    assert "refused" in text and "RUNTIME_ERROR" in text
    assert_no_secret(text)
