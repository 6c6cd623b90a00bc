"""The DeepSpeed policy: packing, log-probs of packed rows, and a 2-rank data-parallel update."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from azr.selfplay import Sample
from azr.tasks import Role, TaskType
from azr_learner.policy import pack, pack_row
from tests.services import free_port

HERE = Path(__file__).parent


def test_pack_fills_micro_batches_within_the_budget():
    lengths = [50, 10, 30, 70, 20, 100, 5]
    bins = pack(lengths, 100)
    assert sorted(i for b in bins for i in b) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in b) <= 100 for b in bins)
    assert len(bins) == 3  # 285 tokens need at least 3 rows of 100
    assert pack([150, 10], 100) == [[0], [1]]  # a sequence over the budget gets a row of its own


def test_pack_row_predicts_each_response_token_from_the_position_before_it():
    a = Sample(TaskType.DEDUCTION, Role.SOLVE, (1, 2, 3), (4, 5), (-1.0, -2.0), 0, 1.0, 0.5)
    b = Sample(TaskType.ABDUCTION, Role.PROPOSE, (6,), (7, 8, 9), (-3.0, -4.0, -5.0), 0, 0.0, -1.0)
    row = pack_row([a, b], [a.logprobs, b.logprobs])
    assert row.input_ids.tolist() == [[1, 2, 3, 4, 5, 6, 7, 8, 9]]
    assert row.position_ids.tolist() == [[0, 1, 2, 3, 4, 0, 1, 2, 3]]
    assert row.predict_at.tolist() == [2, 3, 5, 6, 7]
    assert row.input_ids[0, row.predict_at + 1].tolist() == row.targets.tolist() == [4, 5, 7, 8, 9]
    assert row.advantages.tolist() == [0.5, 0.5, -1.0, -1.0, -1.0]


@pytest.fixture(scope="module")
def policy(model_path):
    from azr.spec import TrainingSpec
    from azr_learner.policy import Policy

    return Policy(str(model_path), TrainingSpec(zero_stage=0, precision="float32", micro_batch_tokens=64))


@pytest.mark.slow
def test_packed_log_probs_equal_one_sequence_at_a_time(policy):
    """Packing must not let a sequence attend to its neighbours in the row."""
    tok = policy.tokenizer
    texts = [("The capital of France is", " Paris, of course."), ("def f(x):", " return x + 1"), ("Hi", " there")]
    samples = [Sample(TaskType.DEDUCTION, Role.SOLVE, tuple(tok.encode(p)), tuple(tok.encode(r)), (), 0, 0.0)
               for p, r in texts]
    packed = policy.log_probs(samples)  # all three share one row (64-token budget)
    model = policy.module
    with torch.no_grad():
        for s, got in zip(samples, packed):
            ids = torch.tensor([list(s.prompt_ids) + list(s.response_ids)])
            logits = model(input_ids=ids).logits[0].float()
            expected = torch.log_softmax(logits, -1)[len(s.prompt_ids) - 1:-1].gather(-1, torch.tensor(s.response_ids)[:, None])
            assert torch.allclose(torch.tensor(got), expected[:, 0], atol=1e-4), (got, expected[:, 0])


def _update(model_path, out: Path, ranks: int, zero_stage: int) -> dict:
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={ranks}", f"--master-port={free_port()}",
           str(HERE / "scripts" / "data_parallel_update.py"), str(model_path), str(out), str(zero_stage)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.slow
def test_two_rank_zero2_update_equals_the_single_rank_update(model_path, tmp_path):
    """Same samples, same update: 2 ranks (gloo, ZeRO-2, several micro-batches each) vs 1 rank."""
    one = _update(model_path, tmp_path / "one", 1, 2)
    two = _update(model_path, tmp_path / "two", 2, 2)
    assert (one["world"], two["world"]) == (1, 2)
    assert one["tokens_trained"] == two["tokens_trained"] > 0
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-5)
    assert two["grad_norm"] == pytest.approx(one["grad_norm"], rel=1e-4)  # the averaged gradients agree
    base = load_file(str(Path(model_path) / "model.safetensors"))
    a, b = (load_file(str(tmp_path / run / "model" / "model.safetensors")) for run in ("one", "two"))
    step_a = torch.cat([(a[k] - base[k]).flatten() for k in sorted(base)])
    step_b = torch.cat([(b[k] - base[k]).flatten() for k in sorted(base)])
    assert step_a.norm() > 0
    # Adam turns float-rounding differences of near-zero gradients into full-size steps on a
    # few weights, so the steps are compared as wholes.
    assert (step_a - step_b).norm() / step_a.norm() < 0.01


@pytest.mark.slow
def test_the_kl_penalty_measures_the_drift_from_the_initial_model(model_path):
    """`training.klCoeff`: zero KL while the weights are the initial model's, a positive one after
    an update moves them, and a reference that stays the initial model (it is never trained)."""
    from azr.spec import TrainingSpec
    from azr_learner.policy import Policy

    policy = Policy(str(model_path), TrainingSpec(zero_stage=0, precision="float32", micro_batch_tokens=256, mini_batches=1,
                                                  learning_rate=1e-4, kl_coeff=0.1))
    tok = policy.tokenizer
    samples = [Sample(TaskType.DEDUCTION, Role.SOLVE, tuple(tok.encode(p)), tuple(tok.encode(r)), (), 0, 0.0, advantage)
               for (p, r), advantage in ((("def f(x):", " return x + 1"), 1.0), (("Hi", " there"), -1.0))]
    reference = {name: p.detach().clone() for name, p in policy.reference.named_parameters()}
    first = policy.train(samples, version=0, seed=0)
    assert first["kl_ref"] == pytest.approx(0.0, abs=1e-6)
    second = policy.train(samples, version=0, seed=1)
    assert second["kl_ref"] > 1e-6
    assert all(torch.equal(p, reference[name]) for name, p in policy.reference.named_parameters())
