"""Sync download: products changed after a cursor; the returned cursor never misses a change."""

from __future__ import annotations

from datetime import timedelta

from .conftest import assert_error


def test_sync_download_cursor(core):
    core.clock.advance(timedelta(seconds=5))
    full = core.admin.get("/sync/download", params={"lastSyncTimestamp": 0}).json()
    assert set(full) == {"successes", "conflicts", "newSyncTimestamp", "updatedProducts", "updatedSales"}
    assert full["successes"] == full["conflicts"] == full["updatedSales"] == []
    assert len(full["updatedProducts"]) == 4
    cursor = full["newSyncTimestamp"]
    assert isinstance(cursor, int)

    core.clock.advance(timedelta(seconds=5))
    assert core.admin.get("/sync/download", params={"lastSyncTimestamp": cursor}).json()["updatedProducts"] == []
    core.admin.post("/sales", json={"items": [{"sku": "TEA-1", "quantity": 1}]})  # stock change
    core.admin.post("/products", json={"name": "Lamp", "sku": "LAMP-1", "price": 20})
    changed = core.user.get("/sync/download", params={"lastSyncTimestamp": cursor}).json()
    assert [p["sku"] for p in changed["updatedProducts"]] == ["TEA-1", "LAMP-1"]
    assert changed["updatedProducts"][0]["stockQuantity"] == 7

    # the clock stands still: a change in the same millisecond as the cursor is still seen
    cursor = changed["newSyncTimestamp"]
    core.admin.patch("/inventory/adjust/by-sku/PEN-1", json={"cost": 0.5})
    again = core.admin.get("/sync/download", params={"lastSyncTimestamp": cursor}).json()
    assert "PEN-1" in [p["sku"] for p in again["updatedProducts"]]


def test_sync_download_parameter_errors(core):
    assert_error(core.admin.get("/sync/download"), 400, "RUNTIME_ERROR")
    assert_error(core.admin.get("/sync/download", params={"lastSyncTimestamp": "yesterday"}), 400, "RUNTIME_ERROR")
