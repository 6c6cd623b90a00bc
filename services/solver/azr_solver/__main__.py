import sys

from azr_generation.cli import role_main

sys.exit(role_main("solver"))
