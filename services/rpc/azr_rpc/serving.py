"""Running a service until it is told to stop: shared by every `azr serve` role.

Imports no gRPC: it only calls methods of the server and health objects it is handed."""

from __future__ import annotations

import signal
import threading

SHUTDOWN_GRACE_SECONDS = 10


def serve_until_signalled(server, health_servicer) -> None:
    """Block until SIGTERM or SIGINT, then stop taking work and let calls in flight finish."""
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    while not stopped.wait(1.0):
        continue
    health_servicer.enter_graceful_shutdown()
    server.stop(grace=SHUTDOWN_GRACE_SECONDS).wait()


def add_status_address_argument(parser) -> None:
    """`--status-address`, shared by every `azr serve` role (see azr_rpc.status_server)."""
    parser.add_argument("--status-address", help="host:port of a plaintext health-only port, for probes that cannot "
                                                 "speak TLS (off by default)")
