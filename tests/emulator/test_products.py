"""Products: listing, lookups, low stock, create/replace/delete, validation, the additive stock quirk."""

from __future__ import annotations

import pytest

from .conftest import assert_error

PRODUCT_KEYS = {"id", "name", "sku", "price", "stockQuantity", "description", "imageUrl", "lowStockThreshold"}


def new_product(**over):
    body = {"name": "Red Cup", "sku": "CUP-1", "price": 3.5, "stockQuantity": 5, "description": "d", "imageUrl": None}
    body.update(over)
    return body


def test_list_and_lookups(core):
    products = core.admin.get("/products").json()
    assert [p["sku"] for p in products] == ["MUG-1", "TEA-1", "PEN-1", "BAG-1"]
    assert all(set(p) == PRODUCT_KEYS for p in products)
    mug = products[0]
    assert mug == {
        "id": 1, "name": "Blue Mug", "sku": "MUG-1", "price": 12.5, "stockQuantity": 40,
        "description": None, "imageUrl": None, "lowStockThreshold": 5,
    }
    assert products[2]["lowStockThreshold"] == 10  # empty threshold in the CSV
    assert core.admin.get("/products/by-id/1").json() == mug
    assert core.user.get("/products/by-sku/MUG-1").json() == mug
    assert core.admin.get("/products/by-name/Blue Mug").json() == mug


def test_missing_product_is_404_and_bad_id_400(core):
    for path in ("/products/by-id/99", "/products/by-sku/NOPE", "/products/by-name/Nope"):
        assert_error(core.admin.get(path), 404, "NOT_FOUND")
    assert_error(core.admin.get("/products/by-id/abc"), 400, "RUNTIME_ERROR")


def test_low_stock_is_strictly_less(core):
    # TEA-1: 8 < 8 is false; BAG-1: 3 < 4; PEN-1: 10 < 10 false; MUG-1: 40 < 5 false
    assert [p["sku"] for p in core.admin.get("/products/low-stock").json()] == ["BAG-1"]
    core.admin.put("/products/by-sku/TEA-1", json=new_product(name="Green Tea", sku="TEA-1", stockQuantity=7, lowStockThreshold=8))
    assert [p["sku"] for p in core.admin.get("/products/low-stock").json()] == ["TEA-1", "BAG-1"]


def test_create_product_201_with_defaults(core):
    resp = core.admin.post("/products", json={"name": "Red Cup", "sku": "CUP-1", "price": "2.345", "id": 77})
    assert resp.status_code == 201
    body = resp.json()
    assert body["id"] == 5  # ids come from the core, not the body
    assert body["price"] == 2.35 and body["stockQuantity"] == 0 and body["lowStockThreshold"] == 10
    assert core.admin.get("/products/by-sku/CUP-1").json() == body
    item = core.admin.get("/inventory/by-sku/CUP-1").json()
    assert (item["cost"], item["category"], item["quantity"]) == (0, "Uncategorized", 0)


def test_duplicate_sku_or_name_is_400_runtime_error(core):
    for dup in ({"sku": "MUG-1"}, {"name": "Blue Mug"}):
        assert_error(core.admin.post("/products", json=new_product(**dup)), 400, "RUNTIME_ERROR")
    assert len(core.admin.get("/products").json()) == 4


VALIDATION_CASES = [
    ({"name": "x" * 101}, "name"),
    ({"name": "   "}, "name"),
    ({"sku": "s" * 51}, "sku"),
    ({"sku": None}, "sku"),
    ({"price": -0.01}, "price"),
    ({"price": None}, "price"),
    ({"stockQuantity": -1}, "stockQuantity"),
    ({"stockQuantity": None}, "stockQuantity"),
    ({"lowStockThreshold": 0}, "lowStockThreshold"),
]


def test_validation_errors_name_the_field(core):
    for over, field in VALIDATION_CASES:
        body = assert_error(core.admin.post("/products", json=new_product(**over)), 400, "VALIDATION_ERROR")
        assert list(body["details"]) == [field], over
        assert isinstance(body["details"][field], str) and body["details"][field]
    assert len(core.admin.get("/products").json()) == 4


def test_limits_are_inclusive(core):
    resp = core.admin.post("/products", json=new_product(name="n" * 100, sku="s" * 50, price=0, stockQuantity=0, lowStockThreshold=1))
    assert resp.status_code == 201, resp.text


def test_several_validation_errors_at_once(core):
    body = assert_error(core.admin.post("/products", json={"price": -1}), 400, "VALIDATION_ERROR")
    assert set(body["details"]) == {"name", "sku", "price"}


UNREADABLE = [
    (b'{"name": "x", ', "application/json"),
    (b"", "application/json"),
    (b"[1, 2]", "application/json"),
    (b'{"name": "Cup", "sku": "C", "price": "abc"}', "application/json"),
    (b'{"name": "Cup", "sku": "C", "price": 1, "stockQuantity": "5"}', "application/json"),
    (b'{"name": "Cup", "sku": "C", "price": 1, "stockQuantity": 1.5}', "application/json"),
    (b'{"name": 5, "sku": "C", "price": 1}', "application/json"),
    (b'{"name": "Cup", "sku": "C", "price": 1}', "text/plain"),
]


def test_unreadable_bodies_are_400_runtime_error(core):
    for content, ctype in UNREADABLE:
        resp = core.admin.post("/products", content=content, headers={"Content-Type": ctype})
        assert_error(resp, 400, "RUNTIME_ERROR")
    assert len(core.admin.get("/products").json()) == 4


@pytest.mark.parametrize("by, key", [("sku", "MUG-1"), ("name", "Blue Mug")])
def test_put_is_a_full_replace(core, by, key):
    core.admin.put(f"/products/by-{by}/{key}", json=new_product(name="Blue Mug", sku="MUG-1", description="x", lowStockThreshold=3))
    resp = core.admin.put(f"/products/by-{by}/{key}", json={"name": "Big Mug", "sku": "MUG-1", "price": 13})
    assert resp.status_code == 200
    body = resp.json()
    assert body == {
        "id": 1, "name": "Big Mug", "sku": "MUG-1", "price": 13.0, "stockQuantity": 0,
        "description": None, "imageUrl": None, "lowStockThreshold": 10,
    }
    assert core.admin.get("/products/by-name/Big Mug").json() == body


def test_put_missing_and_duplicates(core):
    assert_error(core.admin.put("/products/by-sku/NOPE", json=new_product()), 404, "NOT_FOUND")
    assert_error(core.admin.put("/products/by-name/Nope", json=new_product()), 404, "NOT_FOUND")
    assert_error(core.admin.put("/products/by-sku/MUG-1", json=new_product(sku="TEA-1")), 400, "RUNTIME_ERROR")
    assert_error(core.admin.put("/products/by-sku/MUG-1", json=new_product(name="Green Tea")), 400, "RUNTIME_ERROR")
    assert_error(core.admin.put("/products/by-sku/MUG-1", json=new_product(price=-1)), 400, "VALIDATION_ERROR")


def test_delete_is_204(core):
    created = core.admin.post("/products", json=new_product()).json()
    resp = core.admin.delete("/products/by-sku/CUP-1")
    assert resp.status_code == 204 and resp.content == b""
    assert_error(core.admin.get(f"/products/by-id/{created['id']}"), 404, "NOT_FOUND")
    core.admin.post("/products", json=new_product(sku="CUP-2", name="Cup 2"))
    assert core.admin.delete("/products/by-name/Cup 2").status_code == 204
    assert_error(core.admin.delete("/products/by-name/Cup 2"), 404, "NOT_FOUND")
    # the new product got a fresh id, ids are never reused
    assert core.admin.post("/products", json=new_product(sku="CUP-3", name="Cup 3")).json()["id"] == 7


def test_product_with_sales_cannot_be_deleted(core):
    assert_error(core.admin.delete("/products/by-sku/MUG-1"), 400, "RUNTIME_ERROR")
    assert core.admin.get("/products/by-sku/MUG-1").status_code == 200


def test_additive_stock_quirk_both_directions(core):
    def stock():
        return core.admin.get("/products/by-sku/CUP-1").json()["stockQuantity"]

    def qty():
        return core.admin.get("/inventory/by-sku/CUP-1").json()["quantity"]

    core.admin.post("/products", json=new_product(stockQuantity=5))
    assert (stock(), qty()) == (5, 5)
    # updating the product adds its new stock to the inventory item
    core.admin.put("/products/by-sku/CUP-1", json=new_product(stockQuantity=7))
    assert (stock(), qty()) == (7, 12)
    # an inventory update adds the item's quantity to the product
    item = {"sku": "CUP-1", "name": "Red Cup", "quantity": 3, "price": 3.5, "cost": 1.25, "category": "Kitchen"}
    resp = core.admin.put("/inventory/by-sku/CUP-1", json=item)
    assert resp.status_code == 200 and resp.json()["quantity"] == 3
    assert (stock(), qty()) == (10, 3)
    # adjust sets the item's quantity, then adds it to the product
    resp = core.admin.patch("/inventory/adjust/by-sku/CUP-1", json={"quantity": 4})
    assert resp.status_code == 200
    assert (stock(), qty()) == (14, 4)
    # an adjust of the cost alone adds the unchanged quantity once more
    resp = core.admin.patch("/inventory/adjust/by-sku/CUP-1", json={"cost": 2})
    assert resp.json()["cost"] == 2 and resp.json()["quantity"] == 4
    assert (stock(), qty()) == (18, 4)
    # a sale deducts the product only
    core.admin.post("/sales", json={"items": [{"sku": "CUP-1", "quantity": 2}]})
    assert (stock(), qty()) == (16, 4)


def test_seeded_product_update_adds_to_seeded_inventory(core):
    assert core.admin.get("/inventory/by-sku/PEN-1").json()["quantity"] == 10
    core.admin.put("/products/by-sku/PEN-1", json=new_product(name="Pen", sku="PEN-1", stockQuantity=10))
    assert core.admin.get("/inventory/by-sku/PEN-1").json()["quantity"] == 20
    assert core.admin.get("/products/by-sku/PEN-1").json()["stockQuantity"] == 10


def test_encoded_slash_is_rejected_like_springs_firewall(core):
    resp = core.admin.get("/products/by-name/a%2Fb")
    assert resp.status_code == 400
    assert resp.json()["error"] == "Bad Request"
    assert core.admin.get("/products/by-name/Blue%20Mug").json()["sku"] == "MUG-1"


def test_trailing_slash_is_not_the_same_route(core):
    assert core.admin.get("/products/").status_code == 404
