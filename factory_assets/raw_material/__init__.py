"""Layer 1, raw material: landing files become immutable, contract-checked raw data.

Pure modules (simulator, landing, ingest) import no Dagster; the Dagster definitions are in
``defs.py``.
"""
