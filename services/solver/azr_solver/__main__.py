"""`python -m azr_solver`: the same server as `azr serve solver`."""

import argparse
import sys

from azr_solver import add_arguments, serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m azr_solver", description="the solver's Generator server")
    add_arguments(parser)
    return serve(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
