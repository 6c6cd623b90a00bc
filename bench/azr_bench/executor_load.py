"""`azr bench executor-load`: many concurrent clients against one `azr serve executor`.

A real server process (gVisor by default) on loopback; every client loops over Validate
batches of the bundled programs for the whole duration. Each answer is compared with the one
the same server gave to a single client before the load started, so "keeps answering
correctly" is checked, not assumed. A client that is refused (RESOURCE_EXHAUSTED: the server
runs at most `--max-inflight-batches` batches and queues none) backs off and retries; that
refusal is the backpressure, and the count shows it working.

Baseline, in the same run: one client alone for a fraction of the time. Printed: requests
and items per second, latency p50/p99 of answered calls (server time) and per batch including
back-offs (client time), refusals, wrong answers, other errors, and the server's memory
before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PROGRAMS = Path(__file__).resolve().parents[1] / "data" / "programs.jsonl"


@dataclass
class LoadResult:
    clients: int
    seconds: float = 0.0
    requests: int = 0
    items: int = 0
    refused: int = 0
    wrong: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    call_ms: list[float] = field(default_factory=list)    # one answered call
    batch_ms: list[float] = field(default_factory=list)   # first attempt to answer, back-offs included

    def percentile(self, values: list[float], q: float) -> float:
        if not values:
            return float("nan")
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def items_per_second(self) -> float:
        return self.items / self.seconds if self.seconds else 0.0


def load_programs(path: Path) -> list[tuple[str, str]]:
    with open(path) as f:
        return [(row["program"], row["input"]) for row in map(json.loads, f)]


def _request(programs: list[tuple[str, str]], start: int, batch: int):
    from azr_contracts.v1 import executor_pb2

    items = [programs[(start + k) % len(programs)] for k in range(batch)]
    return executor_pb2.ValidateRequest(items=[executor_pb2.ValidateItem(id=str((start + k) % len(programs)), program=p,
                                                                         inputs=[i]) for k, (p, i) in enumerate(items)])


def expected_answers(stub, programs: list[tuple[str, str]], deadline: float) -> dict[str, tuple]:
    """What the server answers one client, at rest: the reference for every answer under load."""
    response = stub.Validate(_request(programs, 0, len(programs)), timeout=deadline)
    return {r.id: (r.valid, tuple(r.outputs), r.error_kind) for r in response.results}


def run_load(address: str, programs: list[tuple[str, str]], expected: dict[str, tuple], clients: int, seconds: float,
             batch: int, deadline: float) -> LoadResult:
    result = LoadResult(clients)
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(seed: int) -> None:
        _LoadClient(address, random.Random(seed), result, lock).run(programs, expected, batch, deadline, stop_at)

    threads = [threading.Thread(target=client, args=(k,), name=f"load-client-{k}") for k in range(clients)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result.seconds = time.monotonic() - start
    return result


class _LoadClient:
    """One client thread: Validate batches until the end of the run, backing off when refused."""

    def __init__(self, address: str, rng: random.Random, result: LoadResult, lock: threading.Lock):
        self.address, self.rng, self.result, self.lock = address, rng, result, lock

    def run(self, programs, expected: dict[str, tuple], batch: int, deadline: float, stop_at: float) -> None:
        import azr_rpc as rpc
        from azr_contracts.v1 import executor_pb2_grpc

        channel = rpc.channel(self.address)
        stub = executor_pb2_grpc.ExecutorStub(channel)
        try:
            while time.monotonic() < stop_at:
                request = _request(programs, self.rng.randrange(len(programs)), batch)
                self._send(stub, request, expected, deadline, stop_at)
        finally:
            channel.close()

    def _send(self, stub, request, expected: dict[str, tuple], deadline: float, stop_at: float) -> None:
        import grpc

        first_try, backoff = time.perf_counter(), 0.02
        while True:
            sent = time.perf_counter()
            try:
                response = stub.Validate(request, timeout=deadline)
                break
            except grpc.RpcError as exc:
                code = exc.code().name
                with self.lock:
                    if code == "RESOURCE_EXHAUSTED":
                        self.result.refused += 1
                    else:
                        self.result.errors[code] = self.result.errors.get(code, 0) + 1
                if code != "RESOURCE_EXHAUSTED" or time.monotonic() > stop_at:
                    return
                time.sleep(backoff * (0.5 + self.rng.random()))  # jittered, so refused clients spread out
                backoff = min(backoff * 2, 1.0)
        done = time.perf_counter()
        wrong = sum((r.valid, tuple(r.outputs), r.error_kind) != expected[r.id] for r in response.results)
        wrong += abs(len(response.results) - len(request.items))
        with self.lock:
            self.result.requests += 1
            self.result.items += len(response.results)
            self.result.wrong += wrong
            self.result.call_ms.append((done - sent) * 1000)
            self.result.batch_ms.append((done - first_try) * 1000)


class ExecutorProcess:
    """`azr serve executor` on a free loopback port, healthy before it is handed out."""

    def __init__(self, sandbox: str, workers: int, max_inflight: int, timeout: float, log: Path):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.address = f"127.0.0.1:{s.getsockname()[1]}"
        command = [sys.executable, "-m", "azr_launcher.cli", "serve", "executor", "--address", self.address, "--sandbox", sandbox,
                   "--workers", str(workers), "--max-inflight-batches", str(max_inflight), "--timeout", str(timeout)]
        with open(log, "w") as out:
            self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        self.log = log

    def wait_healthy(self, seconds: float = 120) -> None:
        import azr_rpc as rpc

        with rpc.channel(self.address) as channel:
            try:
                rpc.wait_serving(channel, seconds, self.proc)
            except rpc.NotServing as exc:
                raise RuntimeError(f"the executor is not serving ({exc}): {self.log.read_text()[-2000:]}") from None

    def rss_mib(self) -> float:
        """Resident memory of the server and everything it started (the sandbox and workers)."""
        import psutil

        root = psutil.Process(self.proc.pid)
        return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)]) / 2**20

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=60.0, help="duration of the concurrent load (default 60)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients (default 32)")
    parser.add_argument("--batch", type=int, default=16, help="programs per Validate request (default 16)")
    parser.add_argument("--sandbox", choices=["gvisor", "process"], default="gvisor")
    parser.add_argument("--workers", type=int, default=max(2, os.cpu_count() or 2))
    parser.add_argument("--max-inflight-batches", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per program run")
    parser.add_argument("--deadline", type=float, default=60.0, help="client deadline per call")
    parser.add_argument("--programs", type=Path, default=DEFAULT_PROGRAMS)
    parser.add_argument("--log", type=Path, default=Path("executor-load.log"), help="the server's log")


def measure(args: argparse.Namespace) -> tuple[LoadResult, LoadResult, tuple[float, float]]:
    """(single client, many clients, server memory in MiB before and after the load)."""
    import azr_rpc as rpc
    from azr_contracts.v1 import executor_pb2_grpc

    programs = load_programs(args.programs)
    server = ExecutorProcess(args.sandbox, args.workers, args.max_inflight_batches, args.timeout, args.log)
    try:
        server.wait_healthy()
        with rpc.channel(server.address) as channel:
            expected = expected_answers(executor_pb2_grpc.ExecutorStub(channel), programs, args.deadline)
        single = run_load(server.address, programs, expected, 1, max(5.0, args.seconds / 6), args.batch, args.deadline)
        rss_before = server.rss_mib()
        many = run_load(server.address, programs, expected, args.clients, args.seconds, args.batch, args.deadline)
        rss_after = server.rss_mib()
    finally:
        server.stop()
    return single, many, (rss_before, rss_after)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    single, many, (rss_before, rss_after) = measure(args)
    table = Table(title=f"executor under load ({args.sandbox}, {args.workers} workers, "
                        f"at most {args.max_inflight_batches} batches in flight, {args.batch} programs per request)")
    for column in ("clients", "seconds", "requests/s", "programs/s", "call p50 ms", "call p99 ms", "batch p50 ms",
                   "batch p99 ms", "refused", "wrong", "errors"):
        table.add_column(column, justify="right")
    for r in (single, many):
        table.add_row(str(r.clients), f"{r.seconds:.1f}", f"{r.requests / r.seconds:.1f}", f"{r.items_per_second:.0f}",
                      f"{r.percentile(r.call_ms, 0.5):.0f}", f"{r.percentile(r.call_ms, 0.99):.0f}",
                      f"{r.percentile(r.batch_ms, 0.5):.0f}", f"{r.percentile(r.batch_ms, 0.99):.0f}",
                      str(r.refused), str(r.wrong), str(sum(r.errors.values())))
    Console(width=200).print(table)
    print(f"server memory: {rss_before:.0f} MiB before the load, {rss_after:.0f} MiB after")
    print(f"load_programs_per_s={many.items_per_second:.1f} single_programs_per_s={single.items_per_second:.1f}")
    print(f"load_over_single={many.items_per_second / single.items_per_second:.2f} "
          f"p50_ms={many.percentile(many.call_ms, 0.5):.0f} p99_ms={many.percentile(many.call_ms, 0.99):.0f} "
          f"wrong={many.wrong} errors={sum(many.errors.values())} refused={many.refused} "
          f"mean_batch_ms={statistics.fmean(many.batch_ms) if many.batch_ms else float('nan'):.0f}")
    return 0 if many.wrong == 0 and not many.errors and not single.errors else 1
