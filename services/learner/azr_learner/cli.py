"""Arguments of `azr serve learner` (argparse only: importing this loads no torch or DeepSpeed)."""

from __future__ import annotations

import argparse

from azr_rpc.serving import add_status_address_argument


def add_serve_learner_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--file", help="the SelfPlayRun")
    parser.add_argument("--proposer", required=True, action="append", help="host:port of a proposer replica (repeatable)")
    parser.add_argument("--solver", action="append", help="host:port of a solver replica (repeatable; default: the proposers)")
    parser.add_argument("--executor", required=True, help="host:port of the executor")
    parser.add_argument("--run-dir", required=True, help="checkpoints, weights and metrics.jsonl go here")
    parser.add_argument("--steps", type=int, help="total steps (overrides training.steps)")
    parser.add_argument("--model", help="the initial policy (overrides model.name)")
    parser.add_argument("--address", default="127.0.0.1:50071", help="host:port of the Learner service (loopback by default)")
    parser.add_argument("--hold-when-done", action="store_true",
                        help="after the last step keep serving (phase done) until SIGTERM, instead of exiting: "
                             "in a StatefulSet an exit is restarted, and the operator reads 'done' to scale the run down")
    add_status_address_argument(parser)
