"""gRPC clients of the proposer, solver and executor, as the self-play loop sees them.

Every call has a deadline. A service that is restarting (UNAVAILABLE, or a deadline hit while
it is down) is retried with backoff until `retry_seconds` have passed, so a restarted executor
or generator costs the step some time, not the run; the request is simply sent again, and its
results are used once. INVALID_ARGUMENT and other errors are bugs and fail at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import grpc

import azr_rpc as rpc
from azr.jobs import CheckJob, Validation, ValidationJob, Verdict
from azr.prompts import Prompt
from azr.selfplay import Generation, Sampling
from azr_contracts import convert
from azr_contracts.v1 import executor_pb2_grpc, generator_pb2, generator_pb2_grpc

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_MESSAGE_BYTES = 256 * 2**20
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED)
EXECUTOR_BATCH = 256      # items per Validate/Check request (the server takes up to 4,096)
EXECUTOR_PARALLEL = 4     # requests in flight at once: round-robin spreads them over the executor's pods


class ServiceUnavailable(RuntimeError):
    pass


class _Client:
    def __init__(self, name: str, address: str, timeout: float, retry_seconds: float, round_robin: bool = False):
        self.name, self.address = name, address
        self.timeout, self.retry_seconds = timeout, retry_seconds
        self.channel = rpc.channel(address, max_message_bytes=MAX_MESSAGE_BYTES, round_robin=round_robin)

    def _call(self, rpc: Callable[..., T], request, timeout: float | None = None) -> T:
        give_up = time.monotonic() + self.retry_seconds
        delay = 0.5
        while True:
            try:
                return rpc(request, timeout=timeout or self.timeout, wait_for_ready=True)
            except grpc.RpcError as exc:
                code = exc.code()  # type: ignore[attr-defined]
                if code not in RETRYABLE or time.monotonic() + delay > give_up:
                    raise ServiceUnavailable(f"{self.name} at {self.address}: {code.name}: {exc.details()}") from None  # type: ignore[attr-defined]
                log.warning("%s at %s answered %s; retrying in %.1f s", self.name, self.address, code.name, delay)
                time.sleep(delay)
                delay = min(delay * 2, 10.0)

    def close(self) -> None:
        self.channel.close()


class GeneratorClient(_Client):
    """A proposer or solver replica."""

    def __init__(self, name: str, address: str, timeout: float = 1800.0, retry_seconds: float = 600.0):
        super().__init__(name, address, timeout, retry_seconds)
        self.stub = generator_pb2_grpc.GeneratorStub(self.channel)

    def generate(self, prompts: Sequence[Prompt], sampling: Sampling) -> list[list[Generation]]:
        request = generator_pb2.GenerateRequest(prompts=[convert.prompt_to_proto(p) for p in prompts], n=sampling.n,
                                                sampling=convert.sampling_to_proto(sampling))
        response = self._call(self.stub.Generate, request)
        groups: list[list[Generation]] = [[] for _ in prompts]
        for c in response.completions:
            prompt_ids = tuple(response.prompt_tokens[c.prompt_index].token_ids)
            groups[c.prompt_index].append(Generation(c.text, prompt_ids, tuple(c.token_ids), tuple(c.logprobs), c.policy_version))
        return groups

    def update_weights(self, version: int, path: str, resume: bool = False) -> float:
        request = generator_pb2.UpdateWeightsRequest(version=version, path=path, resume=resume)
        return self._call(self.stub.UpdateWeights, request, timeout=600.0).seconds

    def load(self, request: generator_pb2.UpdateWeightsRequest, validate_only: bool = False) -> float:
        """One UpdateWeights call, never retried: a broadcast sent again would wait for a learner
        that has moved on (`azr_learner.broadcast`)."""
        sent = generator_pb2.UpdateWeightsRequest()
        sent.CopyFrom(request)
        sent.validate_only = validate_only
        try:
            return self.stub.UpdateWeights(sent, timeout=30.0 if validate_only else 600.0, wait_for_ready=True).seconds
        except grpc.RpcError as exc:
            raise ServiceUnavailable(f"{self.name} at {self.address}: {exc.code().name}: {exc.details()}") from None  # type: ignore[attr-defined]

    def status(self) -> generator_pb2.GeneratorStatus:
        return self._call(self.stub.GetStatus, generator_pb2.GeneratorStatusRequest(), timeout=30.0)

    def policy_version(self) -> int:
        return self.status().policy_version


class ExecutorClient(_Client):
    """The executor's replicas behind one address (`dns:///` of its headless Service in a
    cluster): a step's items go in chunks, several in flight at once, round-robin over the
    pods, so that replicas add throughput. Results keep the items' order."""

    def __init__(self, address: str, timeout: float = 600.0, retry_seconds: float = 600.0):
        super().__init__("executor", address, timeout, retry_seconds, round_robin=True)
        self.stub = executor_pb2_grpc.ExecutorStub(self.channel)
        self.pool = ThreadPoolExecutor(EXECUTOR_PARALLEL, thread_name_prefix="executor-client")

    def _chunked(self, items: Sequence, call: Callable[[int, Sequence], list]) -> list:
        chunks = [(start, items[start:start + EXECUTOR_BATCH]) for start in range(0, len(items), EXECUTOR_BATCH)]
        return [r for part in self.pool.map(lambda c: call(*c), chunks) for r in part]

    def validate(self, jobs: Sequence[ValidationJob]) -> list[Validation]:
        def call(start: int, chunk: Sequence[ValidationJob]) -> list[Validation]:
            return convert.validations_from_proto(self._call(self.stub.Validate, convert.validate_request(chunk, start)))

        return self._chunked(jobs, call)

    def check(self, jobs: Sequence[CheckJob]) -> list[Verdict]:
        def call(start: int, chunk: Sequence[CheckJob]) -> list[Verdict]:
            return convert.verdicts_from_proto(self._call(self.stub.Check, convert.check_request(chunk, start)))

        return self._chunked(jobs, call)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        super().close()
