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
from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from azr.v1 import learner_pb2, learner_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = learner_pb2.DESCRIPTOR.services_by_name["Learner"].full_name


class LearnerService(learner_pb2_grpc.LearnerServicer):
    def __init__(self, learner):
        self.learner = learner

    def GetStatus(self, request, context):
        s = self.learner.status
        with s.lock:
            metrics = {k: float(v) for k, v in s.metrics.items() if isinstance(v, int | float) and math.isfinite(v)}
            return learner_pb2.LearnerStatus(step=s.step, policy_version=s.policy_version, phase=s.phase,
                                             last_checkpoint=s.last_checkpoint, metrics=metrics, total_steps=s.total_steps)

    def Stop(self, request, context):
        """Ask the loop to stop after a checkpoint; answers once it is written (or the deadline nears)."""
        self.learner.request_stop()
        remaining = context.time_remaining()
        self.learner.done.wait(timeout=None if remaining is None else max(0.0, remaining - 1.0))
        return learner_pb2.StopResponse(checkpoint=self.learner.status.last_checkpoint)


def serve_from_args(args: argparse.Namespace) -> int:
    from azr_generation.models import resolve_model
    from azr_learner.learner import Endpoints, Learner
    from azr_learner.policy import Policy, world

    from azr.spec import SelfPlayRun, SpecError, load_run

    rank, _ = world()
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s learner[{rank}] %(levelname)s %(name)s: %(message)s")
    try:
        run = load_run(args.file) if args.file else SelfPlayRun(metadata={"name": "local"})
    except SpecError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.steps is not None and args.steps < 1:
        print("azr serve learner: --steps must be at least 1", file=sys.stderr)
        return 2
    run_dir = Path(args.run_dir)
    from azr_learner.checkpoint import latest_checkpoint

    checkpoint = latest_checkpoint(run_dir)
    model = resolve_model(args.model or run.spec.model.name)
    policy = Policy(model, run.spec.training, load_from=str(checkpoint / "model") if checkpoint else None)
    if rank != 0:
        policy.follow()
        return 0

    learner = Learner(run, run_dir, Endpoints(args.proposer, args.solver or args.proposer, args.executor), policy, args.steps)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="learner-rpc"))
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    learner_pb2_grpc.add_LearnerServicer_to_server(LearnerService(learner), server)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    port = server.add_insecure_port(args.address)
    if port == 0:
        raise OSError(f"cannot bind {args.address}")
    server.start()
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: learner.request_stop())
    log.info("learner on port %d (pid %d): %d steps, %s mode", port, os.getpid(), learner.total_steps,
             run.spec.training.mode.value)
    try:
        learner.fit()
    finally:
        policy.stop_followers()
        learner.close()
        health_servicer.enter_graceful_shutdown()
        server.stop(grace=5).wait()
    return 0
