"""`azr serve proposer|solver`: the Generator gRPC service over one engine.

Concurrent requests are merged by a batcher thread into one engine call (so the engine, not
the server, batches them). UpdateWeights waits for the running batch, loads the new weights
in place, and every completion carries the policy version that produced it. Health turns
SERVING only once the engine is loaded.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import queue
import threading
import time
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

import azr_rpc as rpc
from azr_contracts import convert
from azr_contracts.v1 import generator_pb2, generator_pb2_grpc
from azr_generation.engines import Broadcast, Engine, Sampling
from azr_generation.weights import WeightsError, check_broadcast, check_weights, tensor_shapes
from azr_rpc.serving import serve_until_signalled

log = logging.getLogger(__name__)

SERVICE = generator_pb2.DESCRIPTOR.services_by_name["Generator"]
SERVICE_NAME = SERVICE.full_name
MAX_MESSAGE_BYTES = 256 * 2**20
MAX_PROMPTS = 4096
MAX_N = 64
MAX_PROMPT_CHARS = 200_000
ROLES = ("system", "user", "assistant")


class RequestError(ValueError):
    pass


def render_prompt(tokenizer, prompt: generator_pb2.Prompt) -> list[int]:
    """Token ids of a prompt: the chat template for a conversation, then the assistant prefix."""
    if prompt.messages:
        conversation = convert.prompt_from_proto(prompt)
        if getattr(tokenizer, "chat_template", None):
            messages = [{"role": m.role, "content": m.content} for m in conversation.messages]
            text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + conversation.assistant_prefix
        else:  # plain-text models
            text = conversation.as_text()
        return tokenizer.encode(text, add_special_tokens=False)
    return tokenizer.encode(prompt.text + prompt.assistant_prefix)


def parse_sampling(request: generator_pb2.GenerateRequest, max_model_len: int) -> Sampling:
    s = request.sampling
    if not 1 <= request.n <= MAX_N:
        raise RequestError(f"n: must be between 1 and {MAX_N}, got {request.n}")
    if not 0.0 <= s.temperature <= 10.0:
        raise RequestError(f"sampling.temperature: must be in [0, 10] (0 is greedy), got {s.temperature}")
    if not 0.0 < s.top_p <= 1.0:
        raise RequestError(f"sampling.top_p: must be in (0, 1], got {s.top_p}")
    if not 1 <= s.max_tokens < max_model_len:
        raise RequestError(f"sampling.max_tokens: must be between 1 and {max_model_len - 1}, got {s.max_tokens}")
    return Sampling(n=request.n, temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens,
                    seed=s.seed if s.has_seed else None, logprobs=not s.skip_logprobs)


def check_prompts(request: generator_pb2.GenerateRequest) -> None:
    if not request.prompts:
        raise RequestError("prompts: at least one prompt is required")
    if len(request.prompts) > MAX_PROMPTS:
        raise RequestError(f"prompts: {len(request.prompts)} prompts, the limit is {MAX_PROMPTS}")
    for i, p in enumerate(request.prompts):
        if bool(p.messages) == bool(p.text):
            raise RequestError(f"prompts[{i}]: set exactly one of messages and text")
        size = len(p.text) + len(p.assistant_prefix) + sum(len(m.content) for m in p.messages)
        if size > MAX_PROMPT_CHARS:
            raise RequestError(f"prompts[{i}]: {size} characters, the limit is {MAX_PROMPT_CHARS}")
        for k, m in enumerate(p.messages):
            if m.role not in ROLES:
                raise RequestError(f"prompts[{i}].messages[{k}].role: must be one of {', '.join(ROLES)}, got {m.role!r}")
        if p.messages and not any(m.content.strip() for m in p.messages):
            raise RequestError(f"prompts[{i}]: every message is empty")
        if p.text and not p.text.strip():
            raise RequestError(f"prompts[{i}].text: empty")


@dataclass
class _Job:
    prompts: list[list[int]]
    sampling: list[Sampling]  # one per prompt
    future: futures.Future


class Batcher:
    """One thread owns the engine: it merges whatever requests are waiting into one call."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.version = 0
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._engine_lock = threading.Lock()  # held while generating or loading weights
        self._thread = threading.Thread(target=self._loop, name="engine-batcher", daemon=True)
        self._thread.start()

    def submit(self, prompts: list[list[int]], sampling: Sampling) -> futures.Future:
        """A seeded request's prompt i samples with seed + i: equal prompts in one request
        (a self-play batch often repeats one) still get different samples, reproducibly."""
        per_prompt = [sampling if sampling.seed is None else dataclasses.replace(sampling, seed=sampling.seed + i)
                      for i in range(len(prompts))]
        future: futures.Future = futures.Future()
        self._queue.put(_Job(prompts, per_prompt, future))
        return future

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            jobs = [job]
            while True:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)
                    break
                jobs.append(more)
            self._run(jobs)

    def _run(self, jobs: list[_Job]) -> None:
        prompts = [p for j in jobs for p in j.prompts]
        sampling = [s for j in jobs for s in j.sampling]
        with self._engine_lock:
            version = self.version
            try:
                groups = self.engine.generate(prompts, sampling)
            except Exception as exc:  # an engine failure fails these requests, not the server
                log.exception("engine failure")
                for j in jobs:
                    j.future.set_exception(exc)
                return
        offset = 0
        for j in jobs:
            j.future.set_result((groups[offset:offset + len(j.prompts)], version))
            offset += len(j.prompts)

    def update_weights(self, source: Path | Broadcast, version: int) -> None:
        with self._engine_lock:  # waits for the batch in flight; new batches wait for this
            if isinstance(source, Broadcast):
                self.engine.receive_weights(source)
            else:
                self.engine.load_weights(source)
            self.version = version

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)


class GeneratorService(generator_pb2_grpc.GeneratorServicer):
    """Registered before the engine loads (so health can answer); RPCs are UNAVAILABLE until
    `attach` hands it the engine."""

    def __init__(self, role: str, model: str, max_model_len: int):
        self.role = role
        self.model = model
        self.max_model_len = max_model_len
        self.engine: Engine | None = None
        self.batcher: Batcher | None = None
        self.expected_shapes: dict | None = None
        self._update_lock = threading.Lock()

    def attach(self, engine: Engine, weights_folder: str | None = None) -> None:
        if weights_folder and Path(weights_folder).is_dir():
            try:
                self.expected_shapes = tensor_shapes(Path(weights_folder))
            except WeightsError as exc:
                log.warning("weight updates will not be checked against the model: %s", exc)
        self.batcher = Batcher(engine)
        self.engine = engine

    def _ready(self, context) -> None:
        if self.engine is None:
            context.abort(grpc.StatusCode.UNAVAILABLE, "the engine is still loading")

    def Generate(self, request, context):
        self._ready(context)
        try:
            check_prompts(request)
            sampling = parse_sampling(request, self.max_model_len)
            token_prompts = []
            for i, prompt in enumerate(request.prompts):
                ids = render_prompt(self.engine.tokenizer, prompt)
                if len(ids) + sampling.max_tokens > self.max_model_len:
                    raise RequestError(f"prompts[{i}]: {len(ids)} prompt tokens + max_tokens {sampling.max_tokens} "
                                       f"exceed the context of {self.max_model_len} tokens")
                token_prompts.append(ids)
        except RequestError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        future = self.batcher.submit(token_prompts, sampling)
        try:
            groups, version = future.result(timeout=context.time_remaining())
        except futures.TimeoutError:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "generation did not finish before the deadline")
        except Exception as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"the {self.engine.name} engine failed: {exc}")
        response = generator_pb2.GenerateResponse(policy_version=version)
        for index, (ids, group) in enumerate(zip(token_prompts, groups)):
            response.prompt_tokens.add(token_ids=ids)
            for c in group:
                response.completions.add(prompt_index=index, text=c.text, token_ids=c.token_ids, logprobs=c.logprobs,
                                         finish_reason=c.finish_reason, policy_version=version)
        return response

    def UpdateWeights(self, request, context):
        self._ready(context)
        with self._update_lock:
            if request.version < 0 or (request.version <= self.batcher.version and not request.resume):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              f"version: must be above the current {self.batcher.version}, got {request.version}")
            try:
                source = self._weights_source(request)
            except WeightsError as exc:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            if request.validate_only:
                return generator_pb2.UpdateWeightsResponse(version=request.version)
            origin = (f"a {request.broadcast.backend} broadcast" if isinstance(source, Broadcast) else request.path)
            start = time.perf_counter()
            try:
                self.batcher.update_weights(source, request.version)
            except Exception as exc:
                log.exception("weight update failed")
                context.abort(grpc.StatusCode.UNAVAILABLE, f"the {self.engine.name} engine failed to load {origin}: {exc}")
            seconds = time.perf_counter() - start
        log.info("policy version %d loaded from %s in %.2f s", request.version, origin, seconds)
        return generator_pb2.UpdateWeightsResponse(version=request.version, seconds=seconds)

    def _weights_source(self, request) -> Path | Broadcast:
        if request.HasField("broadcast") == bool(request.path):
            raise WeightsError("set exactly one of path and broadcast")
        if request.path:
            return check_weights(request.path, self.expected_shapes)
        return check_broadcast(request.broadcast, self.engine.transfer_backend, self.engine.transfer_ranks,
                               self.expected_shapes)

    def GetStatus(self, request, context):
        if self.engine is None or self.batcher is None:
            return generator_pb2.GeneratorStatus(role=self.role, model=self.model, ready=False)
        return generator_pb2.GeneratorStatus(role=self.role, model=self.model, engine=self.engine.name,
                                             policy_version=self.batcher.version, ready=True,
                                             transfer_backend=self.engine.transfer_backend,
                                             transfer_ranks=self.engine.transfer_ranks,
                                             transfer_group=self.engine.transfer_group)


def build_server(service: GeneratorService, address: str, tls: rpc.TLS | None = None
                 ) -> tuple[grpc.Server, int, health.HealthServicer, GeneratorService]:
    """The server with health NOT_SERVING: the caller attaches the engine, then sets SERVING."""
    server = rpc.server(16, f"{service.role}-rpc", MAX_MESSAGE_BYTES)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    health_servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    rpc.add_servicer(server, service, SERVICE)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    return server, rpc.add_port(server, address, tls), health_servicer, service


def serve_from_args(role: str, args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {role} %(levelname)s %(message)s")
    from azr.spec import SpecError, WeightSync
    from azr_generation.engines import make_engine, resolve_dtype
    from azr_generation.settings import GeneratorSettings
    from azr_models.resolve import resolve_model

    try:
        settings = GeneratorSettings.from_cli_args(role, args)
        tls = rpc.TLS.from_env()
    except (SpecError, ValueError, rpc.TLSError) as exc:
        log.error("%s", exc)
        return 2
    server, port, health_servicer, service = build_server(GeneratorService(role, settings.model, settings.max_model_len),
                                                          args.address, tls)
    status = rpc.status_server(args.status_address, health_servicer) if args.status_address else None
    if status:
        status.start()
    server.start()  # health answers NOT_SERVING while the engine loads
    path = resolve_model(settings.model)
    engine = make_engine(settings.engine, path, resolve_dtype(settings.dtype.value), settings.max_model_len, settings.seed,
                         settings.memory_fraction, broadcast=settings.weight_sync is WeightSync.NCCL)
    service.attach(engine, path)
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
    log.info("serving %s on port %d (%s engine, %s)", role, port, engine.name, path)
    serve_until_signalled(server, health_servicer)
    if status:
        status.stop(grace=None)
    if service.batcher:
        service.batcher.close()
    engine.close()
    return 0
