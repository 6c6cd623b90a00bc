"""The `azr` command line: one table of subcommands, each a module's `add_arguments` and `run`.

Each subcommand's module is imported when the parser is built, and its service's heavy
libraries (grpc, torch, vLLM) only when it runs, so `azr --help` starts fast and the core
library `azr` stays free of them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from azr import __version__


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_arguments: str   # "module:function", called with the subcommand's parser
    run: str             # "module:function", called with the parsed arguments; returns the exit status


def _resolve(ref: str) -> Callable:
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


# --- the small subcommands that belong to no service ------------------------------------------------------

def add_spec_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--file", required=True)


def run_spec(args: argparse.Namespace) -> int:
    from azr.spec import SpecError, load_run

    try:
        run = load_run(args.file)
    except SpecError as exc:
        print(exc, file=sys.stderr)
        return 2
    sys.stdout.write(run.to_yaml())
    return 0


def add_render_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--file", help="the SelfPlayRun (required unless --crd)")
    parser.add_argument("--crd", action="store_true", help="print the SelfPlayRun CustomResourceDefinition instead")


def add_tls_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", help="folder for ca.crt, tls.crt, tls.key")
    parser.add_argument("--server-name", default="azr", help="the name clients check in the certificate (default: azr)")
    parser.add_argument("--days", type=int, default=365)


def run_tls(args: argparse.Namespace) -> int:
    from azr_rpc import TLS_DIR_ENV, make_certificates

    folder = make_certificates(args.dir, args.server_name, args.days)
    print(f"wrote {folder}/ca.crt, tls.crt and tls.key (certificate for {args.server_name!r}, {args.days} days)")
    print(f"local runs:  {TLS_DIR_ENV}={folder} azr run ...")
    print(f"a cluster:   kubectl create secret generic RUN-tls --from-file={folder}/ca.crt "
          f"--from-file={folder}/tls.crt --from-file={folder}/tls.key  (then spec.security.tlsSecretName: RUN-tls)")
    return 0


# --- the tables -----------------------------------------------------------------------------------------

COMMANDS = (
    Command("run", "run a SelfPlayRun on this machine: every service as a local process",
            "azr_launcher.local:add_run_arguments", "azr_launcher.local:run_local"),
    Command("report", "charts of a run (PNG) and one self-contained HTML page",
            "azr_launcher.report:add_report_arguments", "azr_launcher.report:run_report"),
    Command("eval", "HumanEval pass@1, or code reasoning (deduction/abduction), greedy and sandboxed",
            "azr_launcher.evaluate:add_eval_arguments", "azr_launcher.evaluate:run_eval"),
    Command("render", "print the Kubernetes objects the operator would apply for a SelfPlayRun (YAML)",
            "azr_launcher.cli:add_render_arguments", "azr_operator.render:run_render"),
    Command("spec", "validate a SelfPlayRun file and print it with every default filled in",
            "azr_launcher.cli:add_spec_arguments", "azr_launcher.cli:run_spec"),
    Command("tls", "write a private CA and a certificate for the services' mutual TLS",
            "azr_launcher.cli:add_tls_arguments", "azr_launcher.cli:run_tls"),
    Command("exec", "validate programs or check answers in the sandbox (JSON lines)",
            "azr_executor.cli:add_exec_arguments", "azr_executor.cli:run_exec"),
)

SERVE_ROLES = (
    Command("executor", "the sandboxed executor",
            "azr_executor.cli:add_serve_executor_arguments", "azr_executor.server:serve_from_args"),
    Command("proposer", "the proposer: writes tasks (Generator service)", "azr_proposer:add_arguments", "azr_proposer:serve"),
    Command("solver", "the solver: answers tasks (Generator service)", "azr_solver:add_arguments", "azr_solver:serve"),
    Command("learner", "the learner: drives the loop, trains with DeepSpeed",
            "azr_learner.cli:add_serve_learner_arguments", "azr_learner.server:serve_from_args"),
)

BENCHMARKS = (
    Command("executor", "validations per second, sandboxed vs the reference pool",
            "azr_bench.executor:add_arguments", "azr_bench.executor:run"),
    Command("executor-load", "many concurrent clients against one executor: p50/p99, backpressure, correctness",
            "azr_bench.executor_load:add_arguments", "azr_bench.executor_load:run"),
    Command("all", "every benchmark, each with its baseline; the table goes to docs/benchmarks.md",
            "azr_bench.all:add_arguments", "azr_bench.all:run"),
    Command("e2e", "seconds per self-play step, async vs sync mode", "azr_bench.e2e:add_arguments", "azr_bench.e2e:run"),
    Command("learner", "training tokens per second, the learner's update vs a plain PyTorch loop",
            "azr_bench.learner:add_arguments", "azr_bench.learner:run"),
    Command("rollout", "tokens per second, vLLM vs transformers, self-play prompts",
            "azr_bench.rollout:add_arguments", "azr_bench.rollout:run"),
)

GROUPS = (  # subcommands that hold a table of their own
    ("serve", "run one service as a gRPC server", "role", "ROLE", SERVE_ROLES),
    ("bench", "benchmarks, each against a baseline measured in the same run", "bench", "BENCHMARK", BENCHMARKS),
)


def _add_table(sub, commands: Sequence[Command]) -> None:
    for command in commands:
        parser = sub.add_parser(command.name, help=command.help)
        _resolve(command.add_arguments)(parser)
        parser.set_defaults(_run=command.run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="azr", description="Absolute Zero self-play: propose, solve, verify, learn.")
    parser.add_argument("--version", action="version", version=f"azr {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_table(sub, COMMANDS)
    for name, help_text, dest, metavar, table in GROUPS:
        group = sub.add_parser(name, help=help_text).add_subparsers(dest=dest, required=True, metavar=metavar)
        _add_table(group, table)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(_resolve(args._run)(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
