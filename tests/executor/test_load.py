"""The executor under concurrent load (the 60 s figures are `azr bench executor-load`'s, in
docs/benchmarks.md): every answer stays right, more clients than slots are refused rather than
queued, nothing times out, and the server's memory does not grow with the load."""

import argparse

import pytest

from azr_bench.executor_load import DEFAULT_PROGRAMS, measure

pytestmark = [pytest.mark.slow, pytest.mark.gvisor]


def test_many_clients_get_right_answers_and_backpressure(tmp_path):
    args = argparse.Namespace(seconds=10.0, clients=8, batch=8, sandbox="gvisor", workers=2, max_inflight_batches=2,
                              timeout=5.0, deadline=60.0, programs=DEFAULT_PROGRAMS, log=tmp_path / "executor.log")
    single, many, (rss_before, rss_after) = measure(args)
    assert single.requests > 0 and many.requests > single.requests
    assert many.wrong == 0 and single.wrong == 0
    assert many.errors == {} and single.errors == {}  # no deadline hit, nothing unavailable
    assert many.refused > 0  # 8 clients, 2 slots: the rest were told to back off
    assert rss_after - rss_before < 100, (rss_before, rss_after)
