"""`azr serve executor`: the gRPC shell around Executor.

Every RPC validates its request (INVALID_ARGUMENT with a message), at most
`max_inflight_batches` batches run at once (more get RESOURCE_EXHAUSTED, never an unbounded
queue), every request is answered by its deadline (what is unfinished then counts as timed
out), health turns SERVING once the sandbox is up, and reflection and a Prometheus
endpoint are on. The server binds to loopback unless told otherwise.
"""

from __future__ import annotations

import argparse
import logging
import threading
import time

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import Counter, Histogram, start_http_server

import azr_rpc as rpc
from azr.jobs import CheckJob, ValidationJob
from azr.tasks import TaskType
from azr_contracts import convert
from azr_contracts.v1 import executor_pb2, executor_pb2_grpc
from azr_executor.engine import Executor
from azr_rpc import TLS, TLSError
from azr_rpc.serving import serve_until_signalled

log = logging.getLogger(__name__)

SERVICE = executor_pb2.DESCRIPTOR.services_by_name["Executor"]
SERVICE_NAME = SERVICE.full_name
MAX_MESSAGE_BYTES = 64 * 2**20
MAX_ITEMS = 4096
MAX_INPUTS = 64
MAX_FIELD_CHARS = 100_000
MAX_ID_CHARS = 256
DEADLINE_MARGIN_SECONDS = 2.0

ITEMS = Counter("azr_executor_items_total", "Items handled", ["rpc", "outcome"])
LATENCY = Histogram("azr_executor_batch_seconds", "Seconds per batch", ["rpc"])
REJECTED = Counter("azr_executor_rejected_total", "Requests refused", ["rpc", "code"])


class RequestError(ValueError):
    pass


def _check_text(where: str, text: str, limit: int = MAX_FIELD_CHARS) -> None:
    if len(text) > limit:
        raise RequestError(f"{where}: {len(text)} characters, the limit is {limit}")


def _check_count(n: int) -> None:
    if n == 0:
        raise RequestError("items: at least one item is required")
    if n > MAX_ITEMS:
        raise RequestError(f"items: {n} items, the limit is {MAX_ITEMS} per request")


def parse_validate_request(request: executor_pb2.ValidateRequest) -> tuple[list[str], list[ValidationJob]]:
    """The items' ids, and their jobs."""
    _check_count(len(request.items))
    jobs = []
    for n, item in enumerate(request.items):
        _check_text(f"items[{n}].id", item.id, MAX_ID_CHARS)
        _check_text(f"items[{n}].program", item.program)
        if not 1 <= len(item.inputs) <= MAX_INPUTS:
            raise RequestError(f"items[{n}].inputs: between 1 and {MAX_INPUTS} inputs are required, got {len(item.inputs)}")
        for k, text in enumerate(item.inputs):
            _check_text(f"items[{n}].inputs[{k}]", text)
        jobs.append(convert.validation_job_from_proto(item))
    return [item.id for item in request.items], jobs


def parse_check_request(request: executor_pb2.CheckRequest) -> tuple[list[str], list[CheckJob]]:
    """The items' ids, and their jobs."""
    _check_count(len(request.items))
    jobs = []
    for n, item in enumerate(request.items):
        where = f"items[{n}]"
        _check_text(f"{where}.id", item.id, MAX_ID_CHARS)
        for name in ("program", "gold_output", "answer"):
            _check_text(f"{where}.{name}", getattr(item, name))
        task_type = convert.task_type_from_proto(item.task_type)
        if task_type is None:
            raise RequestError(f"{where}.task_type: must be abduction, deduction or induction")
        if task_type is TaskType.INDUCTION:
            if not 1 <= len(item.hidden_inputs) <= MAX_INPUTS or len(item.hidden_inputs) != len(item.hidden_outputs):
                raise RequestError(f"{where}: induction needs 1 to {MAX_INPUTS} hidden_inputs and as many hidden_outputs")
            for k, text in enumerate([*item.hidden_inputs, *item.hidden_outputs]):
                _check_text(f"{where}.hidden[{k}]", text)
        else:
            if not item.gold_output:
                raise RequestError(f"{where}.gold_output: required for {task_type.value}")
            if task_type is TaskType.ABDUCTION and not item.program:
                raise RequestError(f"{where}.program: required for abduction")
        jobs.append(convert.check_job_from_proto(item, task_type))
    return [item.id for item in request.items], jobs


class ExecutorService(executor_pb2_grpc.ExecutorServicer):
    def __init__(self, executor: Executor, max_inflight_batches: int):
        self.executor = executor
        self._slots = threading.BoundedSemaphore(max_inflight_batches)
        self.max_inflight_batches = max_inflight_batches
        self.inflight = 0  # batches running now (read by tests and metrics)
        self._count_lock = threading.Lock()

    def _admit(self, rpc: str, context: grpc.ServicerContext) -> None:
        if not self._slots.acquire(blocking=False):
            REJECTED.labels(rpc, "RESOURCE_EXHAUSTED").inc()
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                          f"{self.max_inflight_batches} batches already running; retry with backoff")

    @staticmethod
    def _deadline(context: grpc.ServicerContext) -> float | None:
        """When the engine stops waiting: early enough that the answer, with what is unfinished
        marked timed out, reaches the caller before its own deadline."""
        remaining = context.time_remaining()
        return None if remaining is None else time.monotonic() + remaining - min(DEADLINE_MARGIN_SECONDS, 0.2 * remaining)

    def _handle(self, rpc: str, parse, run, request, context: grpc.ServicerContext) -> tuple[list[str], list]:
        """Shared by every RPC: validate the request, take a slot or refuse, run within the deadline."""
        try:
            ids, jobs = parse(request)
        except RequestError as exc:
            REJECTED.labels(rpc, "INVALID_ARGUMENT").inc()
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        self._admit(rpc, context)
        with self._count_lock:
            self.inflight += 1
        try:
            with LATENCY.labels(rpc).time():
                results = run(jobs, self._deadline(context))
        finally:
            with self._count_lock:
                self.inflight -= 1
            self._slots.release()
        for r in results:
            ITEMS.labels(rpc, r.error_kind.value).inc()
        return ids, results

    def Validate(self, request, context):
        ids, validations = self._handle("Validate", parse_validate_request, self.executor.validate, request, context)
        return convert.validate_response(ids, validations)

    def Check(self, request, context):
        ids, verdicts = self._handle("Check", parse_check_request, self.executor.check, request, context)
        return convert.check_response(ids, verdicts)


def build_server(executor: Executor, address: str, max_inflight_batches: int, tls: TLS | None = None
                 ) -> tuple[grpc.Server, int, health.HealthServicer, ExecutorService]:
    server = rpc.server(max_inflight_batches + 4, "executor-rpc", MAX_MESSAGE_BYTES,
                        maximum_concurrent_rpcs=max_inflight_batches * 4)
    service = ExecutorService(executor, max_inflight_batches)
    rpc.add_servicer(server, service, SERVICE)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((SERVICE.full_name, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    port = rpc.add_port(server, address, tls)
    return server, port, health_servicer, service


def serve_from_args(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s executor %(levelname)s %(message)s")
    from azr.spec import SpecError
    from azr_executor.settings import ExecutorSettings

    try:
        tls = TLS.from_env()
        settings = ExecutorSettings.from_cli_args(args)
        pool, limits = settings.make_pool_and_limits()
    except (SpecError, TLSError) as exc:
        log.error("%s", exc)
        return 2
    server, port, health_servicer, _ = build_server(Executor(pool, limits), args.address, settings.max_inflight_batches, tls)
    health_servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    server.start()
    status = rpc.status_server(args.status_address, health_servicer) if args.status_address else None
    if status:
        status.start()
    if args.metrics_port:
        start_http_server(args.metrics_port, addr=args.address.rsplit(":", 1)[0].strip("[]") or "127.0.0.1")
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
    log.info("serving on port %d (sandbox %s, %d workers, %s)", port, pool.mode.value, pool.workers,
             "mutual TLS" if tls else "plaintext")
    serve_until_signalled(server, health_servicer)
    if status:
        status.stop(grace=None)
    pool.close()
    return 0
