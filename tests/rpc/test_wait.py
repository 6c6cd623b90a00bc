"""Waiting for a server to be SERVING: the one helper the runner, the tests and the benchmarks use."""

import subprocess
import sys
import time

import pytest
from grpc_health.v1 import health, health_pb2

import azr_rpc as rpc
from tests.services import free_port


def test_a_server_is_waited_for_until_it_serves():
    servicer = health.HealthServicer()
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    server = rpc.status_server(f"127.0.0.1:{(port := free_port())}", servicer)
    server.start()
    try:
        with rpc.channel(f"127.0.0.1:{port}") as channel:
            assert not rpc.is_serving(channel)
            with pytest.raises(rpc.NotServing, match="not serving after"):
                rpc.wait_serving(channel, 1.0, poll_s=0.1)
            servicer.set("", health_pb2.HealthCheckResponse.SERVING)
            rpc.wait_serving(channel, 5.0, poll_s=0.1)
            assert rpc.is_serving(channel)
    finally:
        server.stop(None)


def test_a_server_that_exits_ends_the_wait_at_once():
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    start = time.monotonic()
    with rpc.channel(f"127.0.0.1:{free_port()}") as channel, pytest.raises(rpc.NotServing, match="exited with 3"):
        rpc.wait_serving(channel, 60.0, process, poll_s=0.1)
    assert time.monotonic() - start < 30
