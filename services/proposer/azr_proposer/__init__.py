"""The proposer: the Generator service (`azr_generation`) in the proposer role; it writes tasks.

    azr serve proposer [ARGS]        or        python -m azr_proposer [ARGS]

The engine, the server and the weight reload are shared with the other role and live in
`azr_generation` (services/generation/); this package is the role's entry point.
"""

from __future__ import annotations

import argparse

ROLE = "proposer"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from azr_generation.cli import add_serve_arguments

    add_serve_arguments(parser)


def serve(args: argparse.Namespace) -> int:
    from azr_generation.server import serve_from_args

    return serve_from_args(ROLE, args)
