"""Layer 2, processing: dbt + DuckDB turn raw data into contracted data products.

Dagster definitions are in ``defs.py``.
"""
