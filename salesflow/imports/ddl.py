"""Warehouse tables the imports add (registered in ``salesflow.warehouse.ensure_schema``).

``raw.customers`` holds the customers imported from spreadsheets, one row per customer id
(a later import of the same id replaces it); ``raw.lead_times`` the lead times imported per sku,
one row per sku (a later import of the same sku replaces it). ``raw.expenses`` is defined in
``salesflow.expenses``; historical sales go to ``raw.sales``/``raw.sale_items`` with negative
sale ids (see ``salesflow.imports.commit``).
"""

IMPORTS_DDL = {
    "raw.customers": """
        CREATE TABLE IF NOT EXISTS raw.customers (
            customer_id VARCHAR, name VARCHAR, email VARCHAR, phone VARCHAR, city VARCHAR,
            customer_since DATE, source_file VARCHAR, imported_at TIMESTAMP)""",
    "raw.lead_times": """
        CREATE TABLE IF NOT EXISTS raw.lead_times (
            sku VARCHAR, lead_time_days INTEGER, source_file VARCHAR, imported_at TIMESTAMP)""",
}
