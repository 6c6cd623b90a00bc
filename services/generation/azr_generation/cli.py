"""Arguments of `azr serve proposer|solver` (argparse only: importing this loads no engine)."""

from __future__ import annotations

import argparse

from azr_rpc.serving import add_status_address_argument


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--file", help="a SelfPlayRun: model and engine come from its spec")
    parser.add_argument("--model", help="embedded name, local HF folder or hub ID (overrides the spec)")
    parser.add_argument("--engine", choices=["vllm", "transformers"], help="overrides the spec")
    parser.add_argument("--dtype", help="float32 (CPU default), bfloat16, float16")
    parser.add_argument("--max-model-len", type=int)
    parser.add_argument("--memory-fraction", type=float,
                        help="vLLM: the share of the GPU (default 0.9) or of RAM on CPU (0.3) it takes (overrides the spec)")
    parser.add_argument("--weight-sync", choices=["disk", "nccl"],
                        help="nccl: also receive weights broadcast by the learner (overrides the spec's training.weightSync)")
    parser.add_argument("--address", default="127.0.0.1:50061", help="host:port to bind (loopback by default)")
    parser.add_argument("--seed", type=int, default=0)
    add_status_address_argument(parser)


def serve_role(role: str, args: argparse.Namespace) -> int:
    """`azr serve proposer|solver`: the server, its engine loaded only now."""
    from azr_generation.server import serve_from_args

    return serve_from_args(role, args)


def role_main(role: str, argv: list[str] | None = None) -> int:
    """`python -m azr_proposer|azr_solver`: the same server as `azr serve ROLE`."""
    parser = argparse.ArgumentParser(prog=f"python -m azr_{role}", description=f"the {role}'s Generator server")
    add_serve_arguments(parser)
    return serve_role(role, parser.parse_args(argv))
