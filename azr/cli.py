"""The `azr` command line. Subcommands import their service lazily, so `azr --help` and the
core library stay free of grpc, torch and vLLM."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from azr import __version__


def _cmd_spec(args: argparse.Namespace) -> int:
    from azr.spec import SpecError, load_run

    try:
        run = load_run(args.file)
    except SpecError as exc:
        print(exc, file=sys.stderr)
        return 2
    sys.stdout.write(run.to_yaml())
    return 0


def _cmd_exec(args: argparse.Namespace) -> int:
    from azr_executor.cli import run_exec

    return run_exec(args)


def _cmd_serve(args: argparse.Namespace) -> int:
    if args.role == "executor":
        from azr_executor.server import serve_from_args

        return serve_from_args(args)
    if args.role == "learner":
        from azr_learner.server import serve_from_args as serve_learner

        return serve_learner(args)
    from azr_generation.server import serve_from_args as serve_generator

    return serve_generator(args.role, args)


def _cmd_run(args: argparse.Namespace) -> int:
    from azr_launcher.cli import run_local

    return run_local(args)


def _cmd_report(args: argparse.Namespace) -> int:
    from azr_launcher.report import run_report

    return run_report(args)


def _cmd_eval(args: argparse.Namespace) -> int:
    from azr_launcher.evaluate import run_eval

    return run_eval(args)


def _cmd_render(args: argparse.Namespace) -> int:
    from azr_operator.render import run_render

    return run_render(args)


def _cmd_tls(args: argparse.Namespace) -> int:
    from azr_rpc import TLS_DIR_ENV, make_certificates

    folder = make_certificates(args.dir, args.server_name, args.days)
    print(f"wrote {folder}/ca.crt, tls.crt and tls.key (certificate for {args.server_name!r}, {args.days} days)")
    print(f"local runs:  {TLS_DIR_ENV}={folder} azr run ...")
    print(f"a cluster:   kubectl create secret generic RUN-tls --from-file={folder}/ca.crt "
          f"--from-file={folder}/tls.crt --from-file={folder}/tls.key  (then spec.security.tlsSecretName: RUN-tls)")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.bench == "rollout":
        from azr_bench import rollout

        return rollout.run(args)
    if args.bench == "all":
        from azr_bench import all as all_benchmarks

        return all_benchmarks.run(args)
    if args.bench == "e2e":
        from azr_bench import e2e

        return e2e.run(args)
    if args.bench == "learner":
        from azr_bench import learner

        return learner.run(args)
    if args.bench == "executor-load":
        from azr_bench import executor_load

        return executor_load.run(args)
    from azr_bench import executor

    return executor.run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="azr", description="Absolute Zero self-play: propose, solve, verify, learn.")
    parser.add_argument("--version", action="version", version=f"azr {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from azr_launcher.cli import add_run_arguments

    p = sub.add_parser("run", help="run a SelfPlayRun on this machine: every service as a local process")
    add_run_arguments(p)
    p.set_defaults(func=_cmd_run)

    from azr_launcher.report import add_report_arguments

    p = sub.add_parser("report", help="charts of a run (PNG) and one self-contained HTML page")
    add_report_arguments(p)
    p.set_defaults(func=_cmd_report)

    from azr_launcher.evaluate import add_eval_arguments

    p = sub.add_parser("eval", help="HumanEval pass@1, or code reasoning (deduction/abduction), greedy and sandboxed")
    add_eval_arguments(p)
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("render", help="print the Kubernetes objects the operator would apply for a SelfPlayRun (YAML)")
    p.add_argument("-f", "--file", help="the SelfPlayRun (required unless --crd)")
    p.add_argument("--crd", action="store_true", help="print the SelfPlayRun CustomResourceDefinition instead")
    p.set_defaults(func=_cmd_render)

    p = sub.add_parser("spec", help="validate a SelfPlayRun file and print it with every default filled in")
    p.add_argument("-f", "--file", required=True)
    p.set_defaults(func=_cmd_spec)

    from azr_executor.cli import add_exec_arguments, add_serve_executor_arguments

    p = sub.add_parser("tls", help="write a private CA and a certificate for the services' mutual TLS")
    p.add_argument("dir", help="folder for ca.crt, tls.crt, tls.key")
    p.add_argument("--server-name", default="azr", help="the name clients check in the certificate (default: azr)")
    p.add_argument("--days", type=int, default=365)
    p.set_defaults(func=_cmd_tls)

    p = sub.add_parser("exec", help="validate programs or check answers in the sandbox (JSON lines)")
    add_exec_arguments(p)
    p.set_defaults(func=_cmd_exec)

    p = sub.add_parser("bench", help="benchmarks, each against a baseline measured in the same run")
    benches = p.add_subparsers(dest="bench", required=True, metavar="BENCHMARK")
    from azr_bench.executor import add_arguments as add_executor_bench_arguments

    add_executor_bench_arguments(benches.add_parser("executor", help="validations per second, sandboxed vs the reference pool"))
    from azr_bench.executor_load import add_arguments as add_load_bench_arguments

    add_load_bench_arguments(benches.add_parser("executor-load", help="many concurrent clients against one executor: "
                                                                      "p50/p99, backpressure, correctness"))
    from azr_bench.all import add_arguments as add_all_bench_arguments
    from azr_bench.e2e import add_arguments as add_e2e_bench_arguments

    add_all_bench_arguments(benches.add_parser("all", help="every benchmark, each with its baseline; the table goes to docs/benchmarks.md"))
    add_e2e_bench_arguments(benches.add_parser("e2e", help="seconds per self-play step, async vs sync mode"))
    from azr_bench.learner import add_arguments as add_learner_bench_arguments

    add_learner_bench_arguments(benches.add_parser("learner", help="training tokens per second, the learner's update "
                                                                  "vs a plain PyTorch loop"))
    from azr_bench.rollout import add_arguments as add_rollout_bench_arguments

    add_rollout_bench_arguments(benches.add_parser("rollout", help="tokens per second, vLLM vs transformers, self-play prompts"))
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("serve", help="run one service as a gRPC server")
    roles = p.add_subparsers(dest="role", required=True, metavar="ROLE")
    add_serve_executor_arguments(roles.add_parser("executor", help="the sandboxed executor"))
    from azr_generation.cli import add_serve_arguments

    add_serve_arguments(roles.add_parser("proposer", help="the proposer: writes tasks (Generator service)"))
    add_serve_arguments(roles.add_parser("solver", help="the solver: answers tasks (Generator service)"))
    from azr_learner.cli import add_serve_learner_arguments

    add_serve_learner_arguments(roles.add_parser("learner", help="the learner: drives the loop, trains with DeepSpeed"))
    p.set_defaults(func=_cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
