"""`azr serve learner`: the Learner gRPC service (GetStatus, Stop) around the training loop.

Rank 0 runs the loop and the service; under torchrun or DeepSpeed's launcher the other ranks
only follow rank 0's training calls. SIGTERM and SIGINT ask the loop to stop: the step in
flight is abandoned (or its update finished), a checkpoint is written, and the process exits 0.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import sys

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

import azr_rpc as rpc
from azr_contracts.v1 import learner_pb2, learner_pb2_grpc

log = logging.getLogger(__name__)

SERVICE = learner_pb2.DESCRIPTOR.services_by_name["Learner"]
SERVICE_NAME = SERVICE.full_name
MAX_MESSAGE_BYTES = 1 << 20  # its requests are tiny


class LearnerService(learner_pb2_grpc.LearnerServicer):
    def __init__(self, learner):
        self.learner = learner

    def GetStatus(self, request, context):
        s = self.learner.status.snapshot()
        metrics = {k: float(v) for k, v in s.metrics.items() if isinstance(v, int | float) and math.isfinite(v)}
        return learner_pb2.LearnerStatus(step=s.step, policy_version=s.policy_version, phase=s.phase,
                                         last_checkpoint=s.last_checkpoint, metrics=metrics, total_steps=s.total_steps)

    def Stop(self, request, context):
        """Ask the loop to stop after a checkpoint; answers once it is written (or the deadline nears)."""
        self.learner.request_stop()
        remaining = context.time_remaining()
        self.learner.done.wait(timeout=None if remaining is None else max(0.0, remaining - 1.0))
        return learner_pb2.StopResponse(checkpoint=self.learner.status.last_checkpoint)


class ReadOnlyLearnerService(LearnerService):
    """GetStatus for the plaintext status port (the operator reads progress there under TLS);
    Stop stays on the authenticated port."""

    def Stop(self, request, context):
        context.abort(grpc.StatusCode.PERMISSION_DENIED, "Stop is served on the learner's main port only")



def build_server(learner, address: str, tls: rpc.TLS | None = None) -> tuple[grpc.Server, int, health.HealthServicer]:
    server = rpc.server(4, "learner-rpc", MAX_MESSAGE_BYTES)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    rpc.add_servicer(server, LearnerService(learner), SERVICE)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    return server, rpc.add_port(server, address, tls), health_servicer


def _hold_until_terminated() -> None:
    import threading

    terminated = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: terminated.set())
    terminated.wait()


def serve_from_args(args: argparse.Namespace) -> int:
    """Every rank loads the policy; rank 0 drives the loop and serves the Learner service, the
    others follow its calls (`Policy.follow`)."""
    from azr.spec import SpecError
    from azr_learner.checkpoint import latest_checkpoint
    from azr_learner.policy import Policy, world
    from azr_learner.settings import LearnerSettings
    from azr_models.resolve import resolve_model

    rank, _ = world()
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s learner[{rank}] %(levelname)s %(name)s: %(message)s")
    # A follower's status server lives as long as this call (a collected grpc.Server stops).
    follower_status = _serve_follower_health(args.status_address) if rank != 0 and args.status_address else None
    try:
        settings = LearnerSettings.from_cli_args(args)
        tls = rpc.TLS.from_env()
    except (SpecError, rpc.TLSError) as exc:
        print(exc, file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"azr serve learner: --{exc}", file=sys.stderr)
        return 2
    checkpoint = latest_checkpoint(settings.run_dir)
    policy = Policy(resolve_model(settings.model), settings.run.spec.training,
                    load_from=str(checkpoint / "model") if checkpoint else None)
    if rank != 0:
        policy.follow()
        if args.hold_when_done:
            _hold_until_terminated()
        if follower_status:
            follower_status.stop(grace=None)
        return 0
    return _drive(settings, policy, args, tls)


def _serve_follower_health(address: str):
    """A follower serves no Learner service; it answers health on the status port, so that a
    pod of every rank passes the same probes as rank 0."""
    follower_health = health.HealthServicer()
    follower_health.set("", health_pb2.HealthCheckResponse.SERVING)
    server = rpc.status_server(address, follower_health)
    server.start()
    return server


def _drive(settings, policy, args: argparse.Namespace, tls) -> int:
    """Rank 0: the loop, with its Learner service (and the read-only one on the status port)."""
    from azr_learner.learner import Endpoints, Learner

    run = settings.run
    learner = Learner(run, settings.run_dir, Endpoints(list(settings.proposers), list(settings.solvers), settings.executor),
                      policy, settings.steps)
    server, port, health_servicer = build_server(learner, args.address, tls)
    status = (rpc.status_server(args.status_address, health_servicer, [(ReadOnlyLearnerService(learner), SERVICE)])
              if args.status_address else None)
    if status:
        status.start()
    server.start()
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: learner.request_stop())
    log.info("learner on port %d (pid %d): %d steps, %s mode", port, os.getpid(), learner.total_steps,
             run.spec.training.mode.value)
    try:
        learner.fit()
        if args.hold_when_done and not learner.stop_requested.is_set():
            log.info("the last step is done; serving its status until SIGTERM (--hold-when-done)")
            learner.stop_requested.wait()
    finally:
        policy.stop_followers()
        learner.close()
        health_servicer.enter_graceful_shutdown()
        server.stop(grace=5).wait()
        if status:
            status.stop(grace=None)
    return 0
