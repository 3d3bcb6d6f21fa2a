"""Layer 3, assembly: reusable feature sets, model templates, training and the model registry.

Pure modules (features, specs, templates, training, registry) import no Dagster; the Dagster
definitions are in ``defs.py``.
"""
