"""The solver, which answers tasks (`azr serve solver`, `python -m azr_solver`): a role of the
Generator service in `azr_generation`, whose engine and server the proposer uses too. With
`spec.solver.shareWith: proposer` no solver process runs at all."""

from functools import partial

from azr_generation.cli import add_serve_arguments, serve_role

ROLE = "solver"
add_arguments = add_serve_arguments
serve = partial(serve_role, ROLE)
