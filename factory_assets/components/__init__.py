"""The factory's Dagster components: one declaration (a ``defs.yaml``) per repeated thing.

``UseCase``: a use case's whole vertical slice. ``FeatureSet``: a feature set's snapshot.
``dg list components`` shows them with their schema; ``dg scaffold defs <type> <name>`` starts one.
"""

from factory_assets.components.feature_set import FeatureSet
from factory_assets.components.use_case import UseCase

__all__ = ["FeatureSet", "UseCase"]
