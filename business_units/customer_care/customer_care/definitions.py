"""Customer care's code location (``workspace.yaml``: location ``customer_care``): its declarations
in ``defs/``, built by the factory like the core's."""

from factory_assets.public import business_unit_definitions

defs = business_unit_definitions(__file__)
