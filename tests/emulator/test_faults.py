"""Fault injection and latency: each fault kind really happens, reproducibly."""

from __future__ import annotations

import time

import httpx
import pytest

from emulator.auth import DEV_JWT_SECRET, Tokens, accounts_from_env
from emulator.faults import FAULT_KINDS, FaultInjector
from emulator.testing import running_emulator

from .conftest import API, assert_error


@pytest.fixture
def faulty(seeded, clock):
    def start(kinds, **kwargs):
        return running_emulator(seeded, clock=clock, fault_rate=1.0, fault_seed=3, fault_kinds=kinds, **kwargs)

    return start


def _admin_headers(seeded, clock) -> dict:
    """A valid ADMIN token without a login request (which could meet a fault itself)."""
    phone = accounts_from_env()[0].phone
    token = Tokens(DEV_JWT_SECRET, 3600).access_token(phone, "ADMIN", "salesflow-admin", clock.timestamp())
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("kind, status", [("http_500", 500), ("http_502", 502), ("http_503", 503)])
def test_http_faults_answer_error_body_and_do_nothing(seeded, clock, faulty, kind, status):
    headers = _admin_headers(seeded, clock)
    with faulty([kind]) as emu:
        resp = httpx.post(f"{emu.url}{API}/sales", json={"items": [{"sku": "MUG-1", "quantity": 1}]}, headers=headers)
        assert_error(resp, status, "INTERNAL_ERROR")
        assert emu.app.state.faults.counts[kind] == 1
    with running_emulator(seeded, clock=clock) as emu:
        assert len(httpx.get(f"{emu.url}{API}/sales", headers=headers).json()) == 5


def test_reset_drops_the_connection_without_answer(seeded, clock, faulty):
    headers = _admin_headers(seeded, clock)
    with faulty(["reset"]) as emu:
        for _ in range(3):
            with pytest.raises(httpx.TransportError) as info:
                httpx.get(f"{emu.url}{API}/products", headers=headers, timeout=5)
            assert not isinstance(info.value, httpx.TimeoutException)


def test_hang_outlasts_the_client_timeout(seeded, clock, faulty):
    headers = _admin_headers(seeded, clock)
    with faulty(["hang"], fault_timeout_s=1.0) as emu:
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(f"{emu.url}{API}/products", headers=headers, timeout=0.3)
        # a patient client gets the real answer after the hang
        started = time.perf_counter()
        resp = httpx.get(f"{emu.url}{API}/products", headers=headers, timeout=5)
        assert resp.status_code == 200 and len(resp.json()) == 4
        assert time.perf_counter() - started >= 1.0


@pytest.mark.parametrize("path", ["/products", "/sales", "/inventory/by-sku/MUG-1"])
def test_truncate_cuts_the_body_detectably(seeded, clock, faulty, path):
    headers = _admin_headers(seeded, clock)
    with faulty(["truncate"]) as emu:
        with httpx.Client(timeout=5) as client:
            with client.stream("GET", f"{emu.url}{API}{path}", headers=headers) as resp:
                assert resp.status_code == 200
                with pytest.raises(httpx.RemoteProtocolError):
                    resp.read()


def test_truncating_an_empty_answer_resets_instead(seeded, clock, faulty):
    headers = _admin_headers(seeded, clock)
    with running_emulator(seeded, clock=clock) as emu:
        httpx.post(f"{emu.url}{API}/products", json={"name": "Cup", "sku": "CUP-1", "price": 1}, headers=headers)
    with faulty(["truncate"]) as emu:
        with pytest.raises(httpx.TransportError):
            httpx.delete(f"{emu.url}{API}/products/by-sku/CUP-1", headers=headers, timeout=5)


def test_every_kind_occurs_and_the_sequence_is_reproducible(seeded, clock):
    headers = _admin_headers(seeded, clock)
    outcomes = []
    for _ in range(2):
        seen = []
        with running_emulator(seeded, clock=clock, fault_rate=1.0, fault_seed=6, fault_timeout_s=0.4) as emu:
            with httpx.Client(timeout=0.2, headers=headers) as client:
                for _ in range(24):
                    try:
                        resp = client.get(f"{emu.url}{API}/products")
                        resp.read()
                        seen.append(resp.status_code)
                    except httpx.TimeoutException:
                        seen.append("timeout")
                    except httpx.TransportError:
                        seen.append("transport")
            counts = dict(emu.app.state.faults.counts)
        assert set(counts) == set(FAULT_KINDS), counts
        assert {500, 502, 503, "timeout", "transport"} <= set(seen)
        assert 200 not in seen or "truncate" in counts
        outcomes.append(counts)
    assert outcomes[0] == outcomes[1]


def test_injector_rates():
    never = FaultInjector(0.0, seed=1)
    assert all(never.draw() is None for _ in range(1000))
    some = FaultInjector(0.2, seed=1)
    hits = sum(some.draw() is not None for _ in range(5000))
    assert 800 < hits < 1200
    a, b = FaultInjector(0.5, seed=9), FaultInjector(0.5, seed=9)
    assert [a.draw() for _ in range(200)] == [b.draw() for _ in range(200)]
    with pytest.raises(ValueError):
        FaultInjector(1.5)
    with pytest.raises(ValueError):
        FaultInjector(0.5, kinds=["explode"])


def test_latency_is_added_to_every_request(seeded, clock):
    with running_emulator(seeded, clock=clock, latency_ms=250) as emu:
        started = time.perf_counter()
        resp = httpx.post(f"{emu.url}{API}/auth/login", json={"phoneNumber": "x", "password": "y"})
        assert resp.status_code == 400
        assert time.perf_counter() - started >= 0.25


def test_a_hung_write_still_happens_after_the_client_gave_up(seeded, clock):
    headers = _admin_headers(seeded, clock)
    with running_emulator(seeded, clock=clock, fault_rate=1.0, fault_kinds=["hang"], fault_timeout_s=0.5) as emu:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{emu.url}{API}/sales", json={"items": [{"sku": "MUG-1", "quantity": 1}]},
                       headers=headers, timeout=0.1)
        time.sleep(0.8)
        emu.app.state.faults.rate = 0.0
        sales = httpx.get(f"{emu.url}{API}/sales", headers=headers).json()
        assert len(sales) == 6 and sales[-1]["items"][0]["sku"] == "MUG-1"


def test_faults_can_be_limited_to_writes(seeded, clock):
    headers = _admin_headers(seeded, clock)
    with running_emulator(seeded, clock=clock, fault_rate=1.0, fault_kinds=["http_503"],
                          fault_methods=["POST", "PUT"]) as emu:
        for _ in range(5):
            assert httpx.get(f"{emu.url}{API}/products", headers=headers).status_code == 200
        resp = httpx.post(f"{emu.url}{API}/sales", json={"items": [{"sku": "MUG-1", "quantity": 1}]},
                          headers=headers)
        assert_error(resp, 503, "INTERNAL_ERROR")
        assert dict(emu.app.state.faults.counts) == {"http_503": 1}
    assert FaultInjector(1.0, seed=1, methods=["post"]).draw("GET") is None


def test_a_planned_hold_applies_one_write_late_and_reports_each_step(seeded, clock):
    headers = _admin_headers(seeded, clock)
    steps = []
    with running_emulator(seeded, clock=clock) as emu:
        held = emu.app.state.faults.plan(
            "hang", method="POST", path="/sales", hold_s=0.6,
            on_received=lambda: steps.append("received"), on_applied=lambda: steps.append("applied"))
        sale = {"items": [{"sku": "MUG-1", "quantity": 1}]}
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{emu.url}{API}/sales", json=sale, headers=headers, timeout=0.2)
        assert steps == ["received"]
        assert len(httpx.get(f"{emu.url}{API}/sales", headers=headers).json()) == 5  # not yet
        assert held.done.wait(5) and steps == ["received", "applied"]
        assert len(httpx.get(f"{emu.url}{API}/sales", headers=headers).json()) == 6
        # planned for one request only: the next is served without a hold
        assert httpx.post(f"{emu.url}{API}/sales", json=sale, headers=headers).status_code == 201
        assert emu.app.state.faults.counts["hang"] == 1
