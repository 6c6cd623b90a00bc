"""From a SelfPlayRun to its services: the plan both runtimes start.

`azr run` starts each planned service as a local process on loopback; the operator renders
the same plans as pods. A plan says which `azr serve` role runs, how many replicas, and its
command-line arguments, given where its peers are: the other half of each service's
`Settings.from_cli_args`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from azr.spec import SelfPlayRun

ROLES = ("executor", "proposer", "solver", "learner")
PORTS = {"executor": 50051, "proposer": 50061, "solver": 50062, "learner": 50071}  # the cluster's fixed ports
STATUS_PORT = 50080  # in a pod under TLS: plaintext health (and the learner's progress) for probes


@dataclass(frozen=True)
class ServicePlan:
    role: str
    replicas: int
    args: tuple[str, ...]  # after `azr serve <role>`, without the bind address

    def command(self, address: str) -> list[str]:
        return ["serve", self.role, *self.args, "--address", address]


def roles(run: SelfPlayRun) -> list[str]:
    """The roles that get their own processes: a solver sharing the proposer's pool has none."""
    return [r for r in ROLES if not (r == "solver" and run.spec.solver.share_with == "proposer")]


def plan(run: SelfPlayRun, spec_file: str, run_dir: str, address: Callable[[str, int], str],
         steps: int | None = None) -> list[ServicePlan]:
    """Every service of the run. `address(role, replica)` says where a peer listens."""
    spec = run.spec
    generators = {"proposer": spec.proposer, "solver": spec.proposer if spec.solver.share_with else spec.solver}
    plans = [ServicePlan("executor", spec.executor.replicas, ("-f", spec_file))]
    for role in ("proposer", "solver"):
        if role in roles(run):
            plans.append(ServicePlan(role, generators[role].replicas, ("-f", spec_file, "--seed", str(spec.training.seed))))
    solver_role = "solver" if "solver" in roles(run) else "proposer"
    learner_args = ["-f", spec_file, "--run-dir", run_dir, "--executor", address("executor", 0)]
    for k in range(generators["proposer"].replicas):
        learner_args += ["--proposer", address("proposer", k)]
    for k in range(generators["solver"].replicas if solver_role == "solver" else generators["proposer"].replicas):
        learner_args += ["--solver", address(solver_role, k)]
    if steps is not None:
        learner_args += ["--steps", str(steps)]
    plans.append(ServicePlan("learner", 1, tuple(learner_args)))
    return plans


def gpus_wanted(run: SelfPlayRun) -> dict[str, int]:
    """Cards each local process asks for: a generator's `resources.gpus`, the learner's per rank."""
    spec = run.spec
    wanted = {"proposer": spec.proposer.resources.gpus, "solver": spec.solver.resources.gpus,
              "learner": spec.learner.resources.gpus * spec.learner.ranks}
    return {role: count for role, count in wanted.items() if count and role in roles(run)}


def gpu_placement(run: SelfPlayRun, visible: list[str]) -> dict[str, str]:
    """`azr run`'s CUDA_VISIBLE_DEVICES per role: cards of its own for each role that asks for
    some, in role order (the engines, then the learner), when the machine has that many.
    Otherwise none is set and the processes share every card, as the one-GPU presets intend
    (an engine taking `memoryFraction` of the card, the learner the rest)."""
    wanted = gpus_wanted(run)
    if not wanted or sum(wanted.values()) > len(visible):
        return {}
    placement, next_card = {}, 0
    for role in ROLES:
        if role in wanted:
            placement[role] = ",".join(visible[next_card:next_card + wanted[role]])
            next_card += wanted[role]
    return placement
