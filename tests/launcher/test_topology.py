"""The spec -> services plan that `azr run` and the operator both use."""

from pathlib import Path

from azr.spec import load_run
from azr_launcher.topology import plan, roles

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def address(role: str, k: int) -> str:
    return f"{role}-{k}:1"


def test_a_shared_solver_is_served_by_the_proposer_pool():
    run = load_run(EXAMPLES / "selfplayrun-cpu.yaml")
    assert roles(run) == ["executor", "proposer", "learner"]
    plans = {p.role: p for p in plan(run, "spec.yaml", "/runs/x", address, steps=3)}
    assert set(plans) == {"executor", "proposer", "learner"}
    args = plans["learner"].args
    assert args[args.index("--solver") + 1] == "proposer-0:1" and args[args.index("--proposer") + 1] == "proposer-0:1"
    assert args[args.index("--executor") + 1] == "executor-0:1" and args[args.index("--steps") + 1] == "3"
    assert plans["proposer"].command("127.0.0.1:5") == ["serve", "proposer", "-f", "spec.yaml", "--seed", "0",
                                                         "--address", "127.0.0.1:5"]


def test_separate_pools_and_replicas_each_get_an_address():
    run = load_run(EXAMPLES / "selfplayrun-gpu.yaml")
    run.spec.solver.share_with = None
    run.spec.proposer.replicas, run.spec.solver.replicas = 2, 3
    learner = next(p for p in plan(run, "s.yaml", "/r", address) if p.role == "learner")
    pairs = list(zip(learner.args[::2], learner.args[1::2]))
    assert [v for k, v in pairs if k == "--proposer"] == ["proposer-0:1", "proposer-1:1"]
    assert [v for k, v in pairs if k == "--solver"] == ["solver-0:1", "solver-1:1", "solver-2:1"]
    assert "--steps" not in learner.args
