"""Customer care's code location: use cases built only on ``factory_assets.public``."""
