"""`python -m azr_proposer`: the same server as `azr serve proposer`."""

import argparse
import sys

from azr_proposer import add_arguments, serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m azr_proposer", description="the proposer's Generator server")
    add_arguments(parser)
    return serve(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
