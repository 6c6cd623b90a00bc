"""Weight sync: each policy version is written once, as a Hugging Face folder under
RUN_DIR/weights/vNNNNNN, and every proposer and solver replica loads it in place
(UpdateWeights). The version before the current one is kept too: a replica may still be
reading it; older ones are deleted.

With `weightSync: nccl` the replicas receive each version by broadcast instead
(`azr_learner.broadcast`), and the folder is still written, after it: a replica restarted
later, a resumed run and the fallback load from it. A broadcast that fails is logged, that
version is loaded from disk, and the run stays on disk."""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from azr_learner.broadcast import BroadcastError, WeightBroadcaster
from azr_learner.clients import GeneratorClient

log = logging.getLogger(__name__)


class WeightPublisher:
    def __init__(self, run_dir: Path, save_weights: Callable[[Path], Path], replicas: Callable[[], list[GeneratorClient]],
                 broadcaster: WeightBroadcaster | None = None):
        self.root = Path(run_dir) / "weights"
        self.save_weights, self.replicas = save_weights, replicas
        self.broadcaster = broadcaster
        self.broadcasts = 0  # versions published by broadcast
        self._lock = threading.Lock()

    def folder(self, version: int) -> Path:
        return self.root / f"v{version:06d}"

    def publish(self, version: int, resume: bool = False, only: list[GeneratorClient] | None = None) -> None:
        """Write `version` (once) and load it into `only`, or into every replica."""
        with self._lock:
            folder = self.folder(version)
            loaded = only is None and not resume and self._broadcast(version)
            if not folder.is_dir():
                self.save_weights(folder)
            if not loaded:
                for client in only if only is not None else self._distinct_replicas():
                    client.update_weights(version, str(folder.resolve()), resume=resume)
        for old in sorted(self.root.glob("v*")):
            if old.name < self.folder(version - 1).name:
                shutil.rmtree(old, ignore_errors=True)

    def bring_all_up_to(self, version: int) -> None:
        """Every replica at `version`: after a resume, or when one was restarted with the base weights."""
        behind = [c for c in self._distinct_replicas() if c.policy_version() != version]
        if behind:
            log.info("publishing version %d to %s", version, ", ".join(c.address for c in behind))
            self.publish(version, resume=True, only=behind)

    def reload(self, client: GeneratorClient, version: int) -> None:
        """Load `version` into one replica from disk (never from the policy, which may be
        mid-update in asynchronous mode)."""
        with self._lock:
            log.warning("%s at %s serves an old policy; loading version %d into it", client.name, client.address, version)
            client.update_weights(version, str(self.folder(version).resolve()), resume=True)

    def _broadcast(self, version: int) -> bool:
        if self.broadcaster is None:
            return False
        try:
            seconds = self.broadcaster.send(version, self._distinct_replicas())
        except BroadcastError as exc:
            log.warning("weight broadcast failed, loading from disk for the rest of the run: %s", exc)
            self.broadcaster = None
            return False
        self.broadcasts += 1
        log.info("policy version %d broadcast in %.2f s", version, seconds)
        return True

    def _distinct_replicas(self) -> list[GeneratorClient]:
        return list({c.address: c for c in self.replicas()}.values())
