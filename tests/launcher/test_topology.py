"""The spec -> services plan that `azr run` and the operator both use."""

from pathlib import Path

from azr.spec import load_run, parse_run
from azr_launcher.topology import gpu_placement, plan, roles

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


def _gpu_run(proposer=1, solver=0, learner=1, ranks=1, shared=True):
    return parse_run({"apiVersion": "azr.dev/v1alpha1", "kind": "SelfPlayRun", "metadata": {"name": "g"}, "spec": {
        "proposer": {"resources": {"gpus": proposer}},
        "solver": {"resources": {"gpus": solver}, **({"shareWith": "proposer"} if shared else {})},
        "learner": {"ranks": ranks, "resources": {"gpus": learner}}}})


def test_engines_and_learner_get_cards_of_their_own_when_the_machine_has_enough():
    assert gpu_placement(_gpu_run(), ["0", "1"]) == {"proposer": "0", "learner": "1"}
    assert gpu_placement(_gpu_run(solver=1, shared=False, ranks=2), ["0", "1", "2", "3"]) == {
        "proposer": "0", "solver": "1", "learner": "2,3"}
    # Indexes as the parent sees them: a run limited to cards 4 and 6 places onto those.
    assert gpu_placement(_gpu_run(), ["4", "6"]) == {"proposer": "4", "learner": "6"}


def test_one_card_or_too_few_are_shared_by_every_process_as_the_one_gpu_presets_intend():
    preset = load_run(EXAMPLES / "selfplayrun-1gpu.yaml")
    assert gpu_placement(preset, ["0"]) == {}
    assert gpu_placement(preset, ["0", "1"]) == {"proposer": "0", "learner": "1"}
    assert gpu_placement(_gpu_run(ranks=2), ["0", "1"]) == {}
    assert gpu_placement(_gpu_run(proposer=0, learner=0), ["0", "1"]) == {}  # a CPU run: nothing set
    assert gpu_placement(_gpu_run(), []) == {}
