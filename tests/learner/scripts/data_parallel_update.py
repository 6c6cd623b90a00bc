"""One TRR++ update of the real model on fixed samples, on however many ranks torchrun starts.

    torchrun --nproc-per-node 2 tests/learner/scripts/data_parallel_update.py MODEL OUT_DIR ZERO_STAGE

Rank 0 writes the updated weights to OUT_DIR/model and the update's metrics to
OUT_DIR/metrics.json; the test compares them with a single-rank run of the same update.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from azr.selfplay import Sample
from azr.spec import TrainingSpec
from azr.tasks import Role, TaskType
from azr_learner.policy import Policy

PAIRS = [("What is 2 + 3?", " It is 5.", 1.0), ("What is 2 + 3?", " It is 7, or maybe 8.", -1.0),
         ("Reverse 'abc'.", " 'cba'", 1.0), ("Reverse 'abc'.", " 'abc' reversed is 'bca'", -1.0),
         ("Name a colour.", " Blue.", 0.5), ("Name a colour.", " Seven hundred and two.", -0.5)]


def main(model: str, out: str, zero_stage: int) -> None:
    training = TrainingSpec(learning_rate=1e-4, mini_batches=2, zero_stage=zero_stage, precision="float32",
                            micro_batch_tokens=16)  # small: several micro-batches per rank
    policy = Policy(model, training)
    if policy.rank != 0:
        policy.follow()
        return
    tok = policy.tokenizer
    samples = []
    for prompt, response, advantage in PAIRS:
        p, r = tuple(tok.encode(prompt)), tuple(tok.encode(response))
        samples.append(Sample(TaskType.DEDUCTION, Role.SOLVE, p, r, (0.0,) * len(r), 0, advantage, advantage))
    metrics = policy.train(samples, version=0, seed=3)
    policy.save_weights(Path(out) / "model")
    policy.stop_followers()
    (Path(out) / "metrics.json").write_text(json.dumps({**metrics, "world": policy.world}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
