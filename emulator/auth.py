"""Accounts, password hashes and the core's JWTs.

Access tokens are HS256 JWTs signed with the raw UTF-8 bytes of the secret (env
``JWT_SECRET``, default :data:`DEV_JWT_SECRET`), claims ``sub`` (phone), ``iss``
``"salesflow-app"``, ``role``, ``username``, ``iat``, ``exp``. Token times follow the
emulator clock, so a ``FixedClock`` moved forward expires tokens as real time would.

Accounts (read from the environment when the app is created):
- ADMIN: ``SALESFLOW_CORE_PHONE`` / ``SALESFLOW_CORE_PASSWORD``
  (defaults :data:`DEFAULT_ADMIN_PHONE` / :data:`DEFAULT_ADMIN_PASSWORD`);
- USER: ``SALESFLOW_EMULATOR_USER_PHONE`` / ``SALESFLOW_EMULATOR_USER_PASSWORD``
  (defaults :data:`DEFAULT_USER_PHONE` / :data:`DEFAULT_USER_PASSWORD`).
Only scrypt hashes of the passwords are stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from typing import Mapping

import jwt

ISSUER = "salesflow-app"
JWT_SECRET_ENV = "JWT_SECRET"
# Development value only; the real core refuses keys shorter than 256 bits, and so does this.
DEV_JWT_SECRET = "salesflow-emulator-dev-jwt-secret-not-for-production"
REFRESH_TTL_S = 14 * 24 * 3600

DEFAULT_ADMIN_PHONE = "+15550000001"
DEFAULT_ADMIN_PASSWORD = "salesflow-demo-admin"
DEFAULT_USER_PHONE = "+15550000002"
DEFAULT_USER_PASSWORD = "salesflow-demo-user"

_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**13, 8, 1


@dataclass(frozen=True)
class Account:
    phone: str
    password: str
    role: str
    username: str
    email: str | None = None


def accounts_from_env(environ: Mapping[str, str] | None = None) -> list[Account]:
    env = os.environ if environ is None else environ
    admin = Account(
        phone=env.get("SALESFLOW_CORE_PHONE") or DEFAULT_ADMIN_PHONE,
        password=env.get("SALESFLOW_CORE_PASSWORD") or DEFAULT_ADMIN_PASSWORD,
        role="ADMIN",
        username="salesflow-admin",
        email="admin@salesflow.example",
    )
    user = Account(
        phone=env.get("SALESFLOW_EMULATOR_USER_PHONE") or DEFAULT_USER_PHONE,
        password=env.get("SALESFLOW_EMULATOR_USER_PASSWORD") or DEFAULT_USER_PASSWORD,
        role="USER",
        username="salesflow-user",
        email="user@salesflow.example",
    )
    if admin.phone == user.phone:
        raise ValueError(
            "SALESFLOW_CORE_PHONE and SALESFLOW_EMULATOR_USER_PHONE must differ "
            f"(both are {admin.phone!r})"
        )
    return [admin, user]


def jwt_secret_from_env(secret: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    value = secret if secret is not None else (env.get(JWT_SECRET_ENV) or DEV_JWT_SECRET)
    if len(value.encode("utf-8")) < 32:
        raise ValueError(
            "JWT_SECRET must be at least 32 bytes (HS256 needs a 256-bit key, as in the core)"
        )
    return value


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32
    )
    b64 = lambda b: base64.b64encode(b).decode("ascii")  # noqa: E731
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${b64(salt)}${b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode("utf-8"),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


class TokenError(Exception):
    """A token the core would not accept (missing, malformed, bad signature, expired)."""


class Tokens:
    def __init__(self, secret: str, ttl_s: float):
        self._key = secret.encode("utf-8")
        self.ttl_s = ttl_s

    def access_token(self, phone: str, role: str, username: str | None, now: float) -> str:
        iat = int(now)
        claims = {
            "sub": phone,
            "iss": ISSUER,
            "role": role,
            "username": username,
            "iat": iat,
            "exp": iat + max(int(round(self.ttl_s)), 0),
        }
        return jwt.encode(claims, self._key, algorithm="HS256")

    def refresh_token(self, phone: str, now: float) -> str:
        iat = int(now)
        claims = {
            "sub": phone,
            "iss": ISSUER,
            "iat": iat,
            "exp": iat + REFRESH_TTL_S,
            "jti": secrets.token_hex(8),
        }
        return jwt.encode(claims, self._key, algorithm="HS256")

    def decode(self, token: str, now: float) -> dict:
        """Claims of a valid token; :class:`TokenError` otherwise. ``exp`` is checked against ``now``."""
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=["HS256"],
                options={
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "verify_aud": False,
                    "verify_iss": False,
                    "require": ["sub", "exp"],
                },
            )
        except jwt.PyJWTError as exc:
            raise TokenError(str(exc)) from None
        exp = claims.get("exp")
        if not isinstance(exp, (int, float)) or isinstance(exp, bool):
            raise TokenError("exp is not a number")
        if now > exp:
            raise TokenError("token expired")
        if not isinstance(claims.get("sub"), str):
            raise TokenError("sub is not a string")
        return claims
