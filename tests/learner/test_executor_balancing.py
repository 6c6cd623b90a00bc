"""Executor replicas add throughput: the learner's client sends a step's chunks concurrently,
round-robin over every address its target resolves to (in a cluster, the `dns:///` name of
the executor's headless Service), and keeps the items' order."""

import threading
import time
from concurrent import futures

import grpc

from azr.jobs import ValidationJob
from azr_contracts.v1 import executor_pb2, executor_pb2_grpc
from azr_learner import clients
from azr_learner.clients import ExecutorClient


class CountingExecutor(executor_pb2_grpc.ExecutorServicer):
    """Answers every item valid, with its own id as the output; counts the requests it got."""

    def __init__(self):
        self.requests = 0
        self.lock = threading.Lock()

    def Validate(self, request, context):
        with self.lock:
            self.requests += 1
        time.sleep(0.05)  # long enough that chunks overlap
        return executor_pb2.ValidateResponse(results=[executor_pb2.ValidateResult(id=i.id, valid=True, outputs=[i.id])
                                                      for i in request.items])


def test_chunks_are_spread_over_every_replica_in_order(monkeypatch):
    monkeypatch.setattr(clients, "EXECUTOR_BATCH", 4)
    replicas, servers, ports = [CountingExecutor(), CountingExecutor()], [], []
    for servicer in replicas:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        executor_pb2_grpc.add_ExecutorServicer_to_server(servicer, server)
        ports.append(server.add_insecure_port("127.0.0.1:0"))
        server.start()
        servers.append(server)
    client = ExecutorClient(f"ipv4:127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}", timeout=30, retry_seconds=30)
    try:
        client.validate([ValidationJob("def f(x):\n    return x", ("0",))])  # both subchannels connect
        results = client.validate([ValidationJob("def f(x):\n    return x", (str(k),)) for k in range(64)])
    finally:
        client.close()
        for server in servers:
            server.stop(0)
    assert [r.outputs[0] for r in results] == [str(k) for k in range(64)]
    assert sum(r.requests for r in replicas) == 1 + 16
    assert all(r.requests >= 4 for r in replicas), [r.requests for r in replicas]  # pick_first would send all 17 to one
