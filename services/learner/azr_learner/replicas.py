"""The proposer and solver replicas as the self-play loop calls them.

`Clients` keeps one gRPC client per address: a solver sharing the proposer's pool is the same
engine, so the same client. `ReplicaPool` is one role's replicas: calls go round-robin, and an
answer sampled by a policy older than allowed (a replica restarted with the base weights) is
thrown away and asked again once the replica has the current weights, so no sample of a wrong
policy is used. What is "older than allowed" and how a replica is brought up to date are the
caller's callables: the pool holds no reference back to the learner.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable

from azr_learner.clients import GeneratorClient

log = logging.getLogger(__name__)

REPUBLISH_ATTEMPTS = 3


class Clients:
    def __init__(self, make: Callable[[str, str], GeneratorClient] = GeneratorClient):
        self._make = make
        self._by_address: dict[str, GeneratorClient] = {}
        self._lock = threading.Lock()

    def of(self, role: str, endpoints: list[str]) -> list[GeneratorClient]:
        """The replicas behind `endpoints`: host:port as given, and every address a
        `dns:///host:port` name resolves to now (a headless Service lists its ready pods)."""
        addresses = expand_endpoints(endpoints)
        with self._lock:
            for address in addresses:
                if address not in self._by_address:
                    self._by_address[address] = self._make(role, address)
            return [self._by_address[a] for a in addresses]

    def close(self) -> None:
        with self._lock:
            for client in self._by_address.values():
                client.close()


class ReplicaPool:
    def __init__(self, role: str, endpoints: list[str], clients: Clients, oldest_acceptable_version: Callable[[], int],
                 bring_up_to_date: Callable[[GeneratorClient], None]):
        if not endpoints:
            raise ValueError(f"at least one {role} replica is needed")
        self.role, self.endpoints, self.clients = role, endpoints, clients
        self.oldest_acceptable_version, self.bring_up_to_date = oldest_acceptable_version, bring_up_to_date
        self._next = 0
        self._lock = threading.Lock()

    def replicas(self) -> list[GeneratorClient]:
        return self.clients.of(self.role, self.endpoints)

    def generate(self, prompts, sampling):
        with self._lock:
            replicas = self.replicas()
            client = replicas[self._next % len(replicas)]
            self._next += 1
        for _ in range(REPUBLISH_ATTEMPTS):
            groups = client.generate(prompts, sampling)
            versions = [g.version for group in groups for g in group]
            if not versions or min(versions) >= self.oldest_acceptable_version():
                return groups
            self.bring_up_to_date(client)
        raise RuntimeError(f"{client.name} at {client.address} keeps answering with an old policy (versions {sorted(set(versions))})")


def expand_endpoints(endpoints: list[str], wait_seconds: float = 600.0, resolve=socket.getaddrinfo,
                     sleep=time.sleep) -> list[str]:
    """host:port stays; dns:///host:port becomes one host:port per address it resolves to.

    A headless Service's name does not resolve while the pool has no ready pod (a pool
    starting, or every replica restarting): that is waited out, up to `wait_seconds`, and then
    a ConnectionError names the pool."""
    out: list[str] = []
    for endpoint in endpoints:
        if endpoint.startswith("dns:///"):
            host, _, port = endpoint[len("dns:///"):].rpartition(":")
            infos = _resolve_waiting(host, int(port), wait_seconds, resolve, sleep)
            addresses = sorted({f"[{i[4][0]}]:{port}" if ":" in i[4][0] else f"{i[4][0]}:{port}" for i in infos})
            out += [a for a in addresses if a not in out]
        elif endpoint not in out:
            out.append(endpoint)
    return out


def _resolve_waiting(host: str, port: int, wait_seconds: float, resolve, sleep) -> list:
    deadline, delay = time.monotonic() + wait_seconds, 1.0
    while True:
        try:
            infos = resolve(host, port, type=socket.SOCK_STREAM)
            if infos:
                return infos
            problem = "no addresses"
        except (socket.gaierror, UnicodeError) as exc:
            problem = str(exc)
        if time.monotonic() >= deadline:
            raise ConnectionError(f"{host}: no ready replica after {wait_seconds:.0f} s ({problem})")
        log.warning("%s does not resolve (%s): no ready replica yet; retrying in %.0f s", host, problem, delay)
        sleep(delay)
        delay = min(delay * 2, 10.0)
