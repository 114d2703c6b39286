"""Inventory: cost and category live here; misses are 400 (not 404); DELETE answers text."""

from __future__ import annotations

from .conftest import assert_error

ITEM_KEYS = {"id", "sku", "name", "description", "quantity", "price", "cost", "category", "createdAt", "updatedAt"}


def item_body(**over):
    body = {"sku": "PEN-1", "name": "Pen", "description": None, "quantity": 2, "price": 1.2, "cost": 0.4, "category": "Office"}
    body.update(over)
    return body


def test_list_carries_cost_and_category(core):
    items = core.admin.get("/inventory").json()
    assert all(set(i) == ITEM_KEYS for i in items)
    by_sku = {i["sku"]: i for i in items}
    assert (by_sku["MUG-1"]["cost"], by_sku["MUG-1"]["category"], by_sku["MUG-1"]["quantity"]) == (5, "Kitchen", 40)
    # empty cost is unknown: 0 and Uncategorized, whatever the category column says
    assert (by_sku["TEA-1"]["cost"], by_sku["TEA-1"]["category"]) == (0, "Uncategorized")
    # empty category
    assert (by_sku["PEN-1"]["cost"], by_sku["PEN-1"]["category"]) == (0.3, "Uncategorized")
    assert by_sku["BAG-1"]["price"] == 9.99
    for i in items:
        assert i["createdAt"].endswith("Z") and i["updatedAt"].endswith("Z")
        assert i["createdAt"].startswith("2025-03-10T15:30:00")


def test_lookups_and_misses_are_400(core):
    mug = core.admin.get("/inventory/by-sku/MUG-1").json()
    assert core.user.get(f"/inventory/by-id/{mug['id']}").json() == mug
    assert core.admin.get("/inventory/by-name/Blue Mug").json() == mug
    for path in ("/inventory/by-id/99", "/inventory/by-sku/NOPE", "/inventory/by-name/Nope"):
        assert_error(core.admin.get(path), 400, "RUNTIME_ERROR")
        assert_error(core.admin.put(path, json=item_body()), 400, "RUNTIME_ERROR")
        assert_error(core.admin.delete(path), 400, "RUNTIME_ERROR")
    assert_error(core.admin.patch("/inventory/adjust/by-sku/NOPE", json={"quantity": 1}), 400, "RUNTIME_ERROR")


def test_delete_answers_text(core):
    resp = core.admin.delete("/inventory/by-sku/PEN-1")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    assert resp.text == "Item deleted successfully."
    assert_error(core.admin.get("/inventory/by-sku/PEN-1"), 400, "RUNTIME_ERROR")
    # the product is untouched
    assert core.admin.get("/products/by-sku/PEN-1").json()["stockQuantity"] == 10
    bag = core.admin.get("/inventory/by-sku/BAG-1").json()
    assert core.admin.delete(f"/inventory/by-id/{bag['id']}").text == "Item deleted successfully."
    assert core.admin.delete("/inventory/by-name/Blue Mug").status_code == 200


def test_put_replaces_item_and_adds_to_product(core):
    resp = core.admin.put("/inventory/by-name/Pen", json=item_body(quantity=6, cost="0.455"))
    assert resp.status_code == 200
    body = resp.json()
    assert (body["quantity"], body["cost"], body["category"], body["price"]) == (6, 0.46, "Office", 1.2)
    assert core.admin.get("/products/by-sku/PEN-1").json()["stockQuantity"] == 16
    # the product's own price and name are not touched by an inventory write
    assert core.admin.get("/products/by-sku/PEN-1").json()["price"] == 1.1


def test_put_validation(core):
    body = assert_error(core.admin.put("/inventory/by-sku/PEN-1", json={"sku": "PEN-1"}), 400, "VALIDATION_ERROR")
    assert set(body["details"]) == {"name", "quantity", "price", "cost", "category"}
    assert_error(core.admin.put("/inventory/by-sku/PEN-1", json=item_body(quantity=-1)), 400, "VALIDATION_ERROR")
    assert_error(core.admin.patch("/inventory/adjust/by-sku/PEN-1", json={"cost": -1}), 400, "VALIDATION_ERROR")
    assert_error(core.admin.put("/inventory/by-sku/PEN-1", json=item_body(sku="MUG-1")), 400, "RUNTIME_ERROR")
    assert core.admin.get("/products/by-sku/PEN-1").json()["stockQuantity"] == 10


def test_adjust_quantity_and_cost(core):
    resp = core.admin.patch("/inventory/adjust/by-sku/BAG-1", json={"quantity": 1, "cost": 4.5})
    assert resp.status_code == 200
    assert (resp.json()["quantity"], resp.json()["cost"]) == (1, 4.5)
    assert core.admin.get("/products/by-sku/BAG-1").json()["stockQuantity"] == 4


def test_inventory_write_for_missing_product_creates_it(core):
    core.admin.delete("/inventory/by-sku/PEN-1")
    # a product created through the products API gets its inventory item
    core.admin.post("/products", json={"name": "Ink", "sku": "INK-1", "price": 2, "stockQuantity": 1})
    core.admin.put("/inventory/by-sku/INK-1", json=item_body(sku="INK-9", name="Ink refill", quantity=3))
    created = core.admin.get("/products/by-sku/INK-9").json()
    assert (created["name"], created["stockQuantity"], created["lowStockThreshold"]) == ("Ink refill", 3, 10)
