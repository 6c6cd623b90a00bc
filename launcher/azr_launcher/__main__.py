"""`python -m azr_launcher`: the `azr` command."""

import sys

from azr_launcher.cli import main

sys.exit(main())
