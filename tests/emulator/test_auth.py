"""Authentication and authorisation: login, refresh, me, 403 choices, roles, token expiry."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import jwt
import pytest

from emulator.auth import DEV_JWT_SECRET, ISSUER
from emulator.server import create_app

from .conftest import API, assert_error, assert_spring_403, core_at, login


def test_login_answers_tokens_and_user(core):
    resp = core.anon.post("/auth/login", json={"phoneNumber": core.emu.admin[0], "password": core.emu.admin[1]})
    assert resp.status_code == 200
    body = resp.json()
    assert body["tokenType"] == "Bearer"
    assert body["message"]
    assert body["refreshExpiresAt"].endswith("Z")
    assert set(body["user"]) == {"id", "phoneNumber", "username", "email", "role", "createdAt", "updatedAt"}
    assert body["user"]["role"] == "ADMIN" and body["user"]["phoneNumber"] == core.emu.admin[0]
    claims = jwt.decode(body["accessToken"], DEV_JWT_SECRET.encode(), algorithms=["HS256"],
                        options={"verify_exp": False, "verify_iat": False})
    assert claims["sub"] == core.emu.admin[0]
    assert claims["iss"] == ISSUER == "salesflow-app"
    assert claims["role"] == "ADMIN"
    assert claims["username"] == body["user"]["username"]
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["iat"] == int(core.clock.timestamp())


@pytest.mark.parametrize(
    "payload",
    [
        {"phoneNumber": "+15550000001", "password": "wrong"},
        {"phoneNumber": "+19999999999", "password": "salesflow-demo-admin"},
    ],
)
def test_wrong_credentials_are_400_runtime_error_not_401(core, payload):
    assert_error(core.anon.post("/auth/login", json=payload), 400, "RUNTIME_ERROR")


def test_login_bad_json_and_missing_fields(core):
    resp = core.anon.post("/auth/login", content=b"{not json", headers={"Content-Type": "application/json"})
    assert_error(resp, 400, "RUNTIME_ERROR")
    body = assert_error(core.anon.post("/auth/login", json={"phoneNumber": ""}), 400, "VALIDATION_ERROR")
    assert set(body["details"]) == {"phoneNumber", "password"}


def test_refresh_answers_401_even_for_its_own_tokens(core):
    resp = core.anon.post("/auth/login", json={"phoneNumber": core.emu.admin[0], "password": core.emu.admin[1]})
    refresh = resp.json()["refreshToken"]
    assert core.anon.post("/auth/refresh", json={"refreshToken": refresh}).status_code == 401
    assert core.anon.post("/auth/refresh", json={"refreshToken": ""}).status_code == 400


def test_me(core):
    assert core.admin.get("/auth/me").json() == {
        "username": "salesflow-admin",
        "role": "ADMIN",
        "phoneNumber": core.emu.admin[0],
    }
    assert core.user.get("/auth/me").json()["role"] == "USER"
    assert_spring_403(core.anon.get("/auth/me"), f"{API}/auth/me")


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer not-a-jwt", "Basic abc", "bearer x.y.z"],
)
def test_missing_or_malformed_token_is_spring_403(core, header):
    headers = {"Authorization": header} if header else {}
    for path in ("/products", "/sales", "/inventory", "/sync/download?lastSyncTimestamp=0"):
        resp = core.anon.get(path, headers=headers)
        assert_spring_403(resp, f"{API}{path.split('?')[0]}")


def test_bad_signature_and_unknown_user_are_403(core):
    now = int(core.clock.timestamp())
    claims = {"sub": core.emu.admin[0], "iss": ISSUER, "role": "ADMIN", "username": "x", "iat": now, "exp": now + 600}
    forged = jwt.encode(claims, b"another-secret-that-is-long-enough-0123456789", algorithm="HS256")
    assert_spring_403(core.anon.get("/products", headers={"Authorization": f"Bearer {forged}"}), f"{API}/products")
    ghost = jwt.encode({**claims, "sub": "+10000000000"}, DEV_JWT_SECRET.encode(), algorithm="HS256")
    assert_spring_403(core.anon.get("/products", headers={"Authorization": f"Bearer {ghost}"}), f"{API}/products")
    good = jwt.encode(claims, DEV_JWT_SECRET.encode(), algorithm="HS256")
    assert core.anon.get("/products", headers={"Authorization": f"Bearer {good}"}).status_code == 200


def test_expired_token_is_403_and_login_again_recovers(core):
    assert core.admin.get("/sales/today").status_code == 200
    core.clock.advance(seconds=3599)
    assert core.admin.get("/products").status_code == 200
    core.clock.advance(seconds=2)
    assert_spring_403(core.admin.get("/products"), f"{API}/products")
    assert_spring_403(core.admin.get("/sales"), f"{API}/sales")
    fresh = login(core.url, *core.emu.admin)
    assert core.anon.get("/products", headers={"Authorization": f"Bearer {fresh}"}).status_code == 200


def test_tiny_token_ttl_expires(seeded, clock):
    with core_at(seeded, clock=clock, token_ttl=1) as c:
        assert c.admin.get("/products").status_code == 200
        clock.advance(timedelta(seconds=2))
        assert c.admin.get("/products").status_code == 403


def test_user_role_is_forbidden_on_sales_and_writes(core):
    assert core.user.get("/products").status_code == 200
    assert core.user.get("/inventory").status_code == 200
    assert core.user.get("/products/by-sku/MUG-1").status_code == 200
    assert core.user.get("/sync/download?lastSyncTimestamp=0").status_code == 200
    product = {"name": "X", "sku": "X-1", "price": 1, "stockQuantity": 1}
    item = {"sku": "PEN-1", "name": "Pen", "quantity": 1, "price": 1, "cost": 1, "category": "C"}
    forbidden = [
        ("GET", "/sales", None),
        ("GET", "/sales/history?days=3", None),
        ("GET", "/sales/today", None),
        ("GET", "/sales/recent?limit=2", None),
        ("GET", "/sales/history/by-sku/MUG-1", None),
        ("POST", "/sales", {"items": [{"sku": "MUG-1", "quantity": 1}]}),
        ("POST", "/sales/bulk", [{"items": [{"sku": "MUG-1", "quantity": 1}]}]),
        ("POST", "/products", product),
        ("PUT", "/products/by-sku/MUG-1", product),
        ("DELETE", "/products/by-name/Pen", None),
        ("PUT", "/inventory/by-sku/PEN-1", item),
        ("DELETE", "/inventory/by-sku/PEN-1", None),
        ("PATCH", "/inventory/adjust/by-sku/PEN-1", {"quantity": 1}),
    ]
    for method, path, body in forbidden:
        resp = core.user.request(method, path, json=body)
        assert_error(resp, 403, "ACCESS_DENIED")
    # nothing changed
    assert core.admin.get("/products/by-sku/MUG-1").json()["stockQuantity"] == 40
    assert len(core.admin.get("/sales").json()) == 5


def test_accounts_and_secret_come_from_env(tmp_path, monkeypatch, clock):
    monkeypatch.setenv("SALESFLOW_CORE_PHONE", "+4400001")
    monkeypatch.setenv("SALESFLOW_CORE_PASSWORD", "pipeline-secret-pw")
    secret = "x" * 40
    monkeypatch.setenv("JWT_SECRET", secret)
    with core_at(tmp_path / "s.sqlite3", clock=clock) as c:
        assert c.emu.admin == ("+4400001", "pipeline-secret-pw")
        jwt.decode(c.admin_token, secret.encode(), algorithms=["HS256"], options={"verify_exp": False, "verify_iat": False})
        bad = c.anon.post("/auth/login", json={"phoneNumber": "+15550000001", "password": "salesflow-demo-admin"})
        assert_error(bad, 400, "RUNTIME_ERROR")
    # only hashes are stored
    conn = sqlite3.connect(tmp_path / "s.sqlite3")
    rows = conn.execute("SELECT * FROM users").fetchall()
    conn.close()
    assert len(rows) == 2
    assert not any("pipeline-secret-pw" in str(v) or "salesflow-demo-user" in str(v) for r in rows for v in r)


def test_short_jwt_secret_is_refused(tmp_path):
    with pytest.raises(ValueError, match="32 bytes"):
        create_app(tmp_path / "s.sqlite3", jwt_secret="short")


def test_only_login_and_refresh_are_public(core):
    assert_spring_403(core.anon.get("/nope"), f"{API}/nope")
    assert_spring_403(core.anon.post("/auth/logout", json={}), f"{API}/auth/logout")
    assert_error(core.admin.get("/nope"), 404, "NOT_FOUND")
    assert core.anon.post("/auth/refresh", json={"refreshToken": "abc"}).status_code == 401
