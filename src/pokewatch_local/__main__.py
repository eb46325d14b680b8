"""`python -m pokewatch_local`: the `pokewatch` command without its console script."""

import sys

from pokewatch_local.cli import main

sys.exit(main())
