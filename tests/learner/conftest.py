"""Real services for the learner's tests: a gVisor executor and a transformers generator
(one engine serving both roles, as the CPU preset does), started once per module."""

import subprocess
import sys
import time

import grpc
import pytest
import yaml

from azr_contracts.v1 import learner_pb2, learner_pb2_grpc
from tests.services import free_port, start_server, stop_server

# Tiny and fast: the point is the loop's mechanics on the real model, not what it learns.
TEST_SPEC = {
    "apiVersion": "azr.dev/v1alpha1",
    "kind": "SelfPlayRun",
    "metadata": {"name": "learner-test"},
    "spec": {
        "model": {"name": "smollm2-135m-instruct", "dtype": "float32", "maxModelLen": 1024},
        # Both task domains: every real run of the suite (learner, `azr run`) steps through bug repair too.
        "method": {"domains": ["codeIO", "bugRepair"], "proposalsPerType": 2, "references": 1, "monteCarloSamples": 2,
                   "maxResponseTokens": 48, "seedTasks": 1, "seedMaxRounds": 1},
        "training": {"steps": 2, "learningRate": 1.0e-5, "miniBatches": 1, "zeroStage": 0, "precision": "float32",
                     "checkpointEvery": 1, "keepCheckpoints": 1, "microBatchTokens": 2048},
        "proposer": {"engine": "transformers"},
        "solver": {"engine": "transformers", "shareWith": "proposer"},
        "executor": {"sandbox": "gvisor", "workers": 2, "timeoutSeconds": 5},
    },
}


def write_spec(path, **training):
    spec = yaml.safe_load(yaml.safe_dump(TEST_SPEC))
    spec["spec"]["training"].update(training)
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture(scope="module")
def services(model_path, tmp_path_factory):
    """(executor address, generator address) of real server processes."""
    logs = tmp_path_factory.mktemp("services")
    spec = write_spec(logs / "run.yaml")
    executor, executor_channel = start_server("executor", logs, "-f", str(spec))
    generator, generator_channel = start_server("proposer", logs, "-f", str(spec), "--model", str(model_path))
    yield executor.address, generator.address
    stop_server(generator, generator_channel)
    stop_server(executor, executor_channel)


class LearnerProcess:
    """`azr serve learner` as a process, with its status service."""

    def __init__(self, spec, run_dir, services, *extra: str):
        executor, generator = services
        self.port = free_port()
        self.log = run_dir.parent / f"{run_dir.name}-learner-{time.monotonic_ns()}.log"
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "azr_launcher.cli", "serve", "learner", "-f", str(spec), "--proposer", generator,
                 "--executor", executor, "--run-dir", str(run_dir), "--address", f"127.0.0.1:{self.port}", *extra],
                stdout=out, stderr=subprocess.STDOUT)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        self.stub = learner_pb2_grpc.LearnerStub(self.channel)

    def status(self):
        try:
            return self.stub.GetStatus(learner_pb2.LearnerStatusRequest(), timeout=5)
        except grpc.RpcError:
            return None

    def wait(self, timeout: float = 1500) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail(f"the learner did not finish in {timeout} s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text()[-6000:]

    def close(self) -> None:
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
