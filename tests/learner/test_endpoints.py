"""Replica addresses: plain host:port, or a dns:/// name (a headless Service) expanded to its pods."""

import socket

import pytest

from azr_learner.replicas import expand_endpoints


def test_dns_endpoints_expand_to_every_address_and_plain_ones_stay():
    assert expand_endpoints(["10.0.0.1:5", "10.0.0.1:5", "host-b:6"]) == ["10.0.0.1:5", "host-b:6"]
    expanded = expand_endpoints(["dns:///localhost:50061"])
    assert "127.0.0.1:50061" in expanded and all(a.endswith(":50061") for a in expanded)


def test_a_pool_without_ready_pods_is_waited_for_then_named():
    answers = [socket.gaierror(-2, "Name or service not known")] * 2 + [[(None, None, None, "", ("10.1.2.3", 7))]]

    def resolve(host, port, type):  # noqa: A002 - getaddrinfo's keyword
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    slept = []
    assert expand_endpoints(["dns:///pool.ns.svc:7"], resolve=resolve, sleep=slept.append) == ["10.1.2.3:7"]
    assert slept == [1.0, 2.0]

    def never(host, port, type):  # noqa: A002
        raise socket.gaierror(-2, "Name or service not known")

    with pytest.raises(ConnectionError, match="pool.ns.svc: no ready replica after 0 s"):
        expand_endpoints(["dns:///pool.ns.svc:7"], wait_seconds=0.0, resolve=never, sleep=lambda s: None)
