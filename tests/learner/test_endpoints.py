"""Replica addresses: plain host:port, or a dns:/// name (a headless Service) expanded to its pods."""

from azr_learner.learner import expand_endpoints


def test_dns_endpoints_expand_to_every_address_and_plain_ones_stay():
    assert expand_endpoints(["10.0.0.1:5", "10.0.0.1:5", "host-b:6"]) == ["10.0.0.1:5", "host-b:6"]
    expanded = expand_endpoints(["dns:///localhost:50061"])
    assert "127.0.0.1:50061" in expanded and all(a.endswith(":50061") for a in expanded)
