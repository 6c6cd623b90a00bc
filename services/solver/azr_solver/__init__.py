"""The solver: the Generator service (`azr_generation`) in the solver role; it answers tasks.

    azr serve solver [ARGS]        or        python -m azr_solver [ARGS]

The engine, the server and the weight reload are shared with the other role and live in
`azr_generation` (services/generation/); this package is the role's entry point.
"""

from __future__ import annotations

import argparse

ROLE = "solver"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from azr_generation.cli import add_serve_arguments

    add_serve_arguments(parser)


def serve(args: argparse.Namespace) -> int:
    from azr_generation.server import serve_from_args

    return serve_from_args(ROLE, args)
