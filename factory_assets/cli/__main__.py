"""`python -m factory_assets.cli`: the `factory` command without the console script."""

import sys

from factory_assets.cli import main

sys.exit(main())
