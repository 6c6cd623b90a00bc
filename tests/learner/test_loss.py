"""The TRR++ policy loss (docs/method.md, part 5): PPO clip, token-mean, entropy bonus, no KL."""

import math

import pytest
import torch

from azr_learner.loss import ppo_clip_loss, token_log_probs


def test_at_ratio_one_the_loss_is_minus_the_token_mean_advantage():
    logp = torch.log(torch.full((2, 3), 0.5))
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    adv = torch.tensor([1.0, -2.0])
    loss, stats = ppo_clip_loss(logp, logp.clone(), adv, mask, entropy_coeff=0.0)
    assert loss.item() == pytest.approx(-(3 * 1.0 + 1 * -2.0) / 4)  # token-mean: the long response weighs 3x
    assert stats.clip_fraction == 0.0 and stats.approx_kl == pytest.approx(0.0)


@pytest.mark.parametrize("advantage, shift, moves", [
    (1.0, 0.0, True),            # ratio 1: inside the trust region
    (1.0, math.log(1.5), False),  # ratio 1.5 > 1.2 with A > 0: clipped, no gradient
    (1.0, math.log(0.5), True),   # ratio 0.5 with A > 0: min picks the unclipped term
    (-1.0, math.log(0.5), False),  # ratio 0.5 < 0.8 with A < 0: clipped
    (-1.0, math.log(1.5), True),  # ratio 1.5 with A < 0: unclipped, pushed back
])
def test_clipping_stops_the_gradient_only_outside_the_trust_region(advantage, shift, moves):
    old = torch.zeros(1, 1)
    new = (old + shift).requires_grad_(True)
    loss, _ = ppo_clip_loss(new, old, torch.tensor([advantage]), torch.ones(1, 1), entropy_coeff=0.0)
    loss.backward()
    assert (new.grad.abs().item() > 0) is moves


def test_masked_tokens_do_not_count():
    old = torch.zeros(1, 4)
    new = torch.tensor([[0.1, -0.1, 5.0, -5.0]], requires_grad=True)
    mask = torch.tensor([[1, 1, 0, 0]])
    loss, _ = ppo_clip_loss(new, old, torch.tensor([1.0]), mask, entropy_coeff=0.0)
    loss.backward()
    assert new.grad[0, 2:].abs().sum().item() == 0.0
    other = torch.tensor([[0.1, -0.1, -7.0, 9.0]])
    assert ppo_clip_loss(other, old, torch.tensor([1.0]), mask, entropy_coeff=0.0)[0].item() == pytest.approx(loss.item())


def test_entropy_bonus_and_token_log_probs():
    logits = torch.zeros(1, 2, 8)                    # uniform over 8 tokens
    tokens = torch.tensor([[3, 5]])
    logp, entropy = token_log_probs(logits, tokens)
    assert torch.allclose(logp, torch.full((1, 2), -math.log(8)))
    assert torch.allclose(entropy, torch.full((1, 2), math.log(8)))
    loss, stats = ppo_clip_loss(logp, logp.detach(), torch.tensor([0.0]), torch.ones(1, 2), entropy, entropy_coeff=0.01)
    assert stats.entropy == pytest.approx(math.log(8)) and loss.item() == pytest.approx(-0.01 * math.log(8))


def test_a_step_raises_the_probability_of_a_rewarded_response():
    torch.manual_seed(0)
    policy = torch.nn.Linear(4, 6)
    state, tokens = torch.randn(1, 3, 4), torch.tensor([[1, 4, 2]])
    with torch.no_grad():
        old, _ = token_log_probs(policy(state), tokens)
    optimizer = torch.optim.SGD(policy.parameters(), lr=0.5)
    for advantage, direction in ((1.0, 1), (-1.0, -1)):
        before, _ = token_log_probs(policy(state), tokens)
        logp, entropy = token_log_probs(policy(state), tokens)
        loss, _ = ppo_clip_loss(logp, old, torch.tensor([advantage]), torch.ones(1, 3), entropy)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            after, _ = token_log_probs(policy(state), tokens)
        assert direction * (after.sum() - before.sum()).item() > 0
        old = after.detach()


def test_the_kl_penalty_is_zero_at_the_reference_and_pulls_back_towards_it():
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    reference = torch.tensor([[-1.0, -2.0, -3.0]])
    at_reference = reference.clone().requires_grad_(True)
    loss, stats = ppo_clip_loss(at_reference, reference, torch.tensor([0.0]), mask, entropy_coeff=0.0,
                                ref_log_probs=reference, kl_coeff=0.5)
    assert loss.item() == pytest.approx(0.0) and stats.kl_ref == pytest.approx(0.0)
    loss.backward()
    assert at_reference.grad.abs().max().item() == pytest.approx(0.0)  # the estimator's minimum
    # Off the reference: the k3 estimator's value, and a gradient that moves log p back to it.
    moved = torch.tensor([[-0.5, -2.5, 9.0]], requires_grad=True)
    loss, stats = ppo_clip_loss(moved, moved.detach(), torch.tensor([0.0]), mask, entropy_coeff=0.0,
                                ref_log_probs=reference, kl_coeff=0.5)
    d = reference[0, :2] - moved.detach()[0, :2]
    expected = (torch.exp(d) - d - 1).mean().item()
    assert stats.kl_ref == pytest.approx(expected) and loss.item() == pytest.approx(0.5 * expected)
    loss.backward()
    assert moved.grad[0, 0] > 0 and moved.grad[0, 1] < 0 and moved.grad[0, 2] == 0  # descent lowers the first, raises the second
    # Without a coefficient the reference changes nothing.
    plain, _ = ppo_clip_loss(moved, moved.detach(), torch.tensor([1.0]), mask, entropy_coeff=0.0)
    with_reference, _ = ppo_clip_loss(moved, moved.detach(), torch.tensor([1.0]), mask, entropy_coeff=0.0, ref_log_probs=reference)
    assert with_reference.item() == pytest.approx(plain.item())
