"""The proposer's entry point: `azr serve proposer` or `python -m azr_proposer`. It writes the
tasks, as the Generator service of `azr_generation` (engine, server, weight reload), which it
shares with the solver."""

from functools import partial

from azr_generation.cli import add_serve_arguments, serve_role

ROLE = "proposer"
add_arguments = add_serve_arguments
serve = partial(serve_role, ROLE)
