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
