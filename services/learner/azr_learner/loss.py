"""The TRR++ policy loss: PPO's clipped surrogate plus an entropy bonus, no critic, and no KL
term unless `training.klCoeff` asks for one (docs/method.md, part 5).

For every response token t, with the importance ratio between the policy being trained and
the one that sampled it,

    ratio_t = exp(logp_t - old_logp_t)
    surrogate_t = min(ratio_t * A, clip(ratio_t, 1 - eps, 1 + eps) * A)
    loss = -mean_t(surrogate_t) - entropy_coeff * mean_t(entropy_t)

where A is the response's TRR++ advantage broadcast to all its tokens. With `klCoeff` (beta,
a project option; AZR has none) the loss also holds the policy near the model it started from,
with the estimator DeepSeekMath's GRPO uses (non-negative, unbiased for KL(pi || ref) on tokens
sampled from pi):

    kl_t = exp(ref_logp_t - logp_t) - (ref_logp_t - logp_t) - 1
    loss += beta * mean_t(kl_t)

The means run
over every real (unmasked) token of the mini-batch ("token-mean"). When a mini-batch is split
into micro-batches and ranks, each part divides its sums by the token count of the whole
mini-batch (`normalizer`), so the accumulated gradient is exactly the token-mean's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class LossStats:
    loss: float
    policy_loss: float
    entropy: float
    clip_fraction: float      # share of tokens whose ratio was clipped
    approx_kl: float          # mean of (ratio - 1) - log ratio: how far the policy moved
    kl_ref: float = 0.0       # mean kl_t to the reference model (0 without one)


def token_log_probs(logits: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(token) and the entropy of the distribution, at every position.

    logits: [batch, time, vocab] predicting `tokens`: [batch, time]."""
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    chosen = log_probs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    entropy = -(log_probs.exp() * log_probs).sum(-1)
    return chosen, entropy


def ppo_clip_loss(log_probs: torch.Tensor, old_log_probs: torch.Tensor, advantages: torch.Tensor,
                  mask: torch.Tensor, entropy: torch.Tensor | None = None, clip_ratio: float = 0.2,
                  entropy_coeff: float = 0.001, normalizer: float | None = None,
                  ref_log_probs: torch.Tensor | None = None, kl_coeff: float = 0.0) -> tuple[torch.Tensor, LossStats]:
    """Token-mean clipped surrogate over the response tokens selected by `mask`.

    log_probs, old_log_probs, mask, entropy: [batch, time]; advantages: [batch] (one per
    response, broadcast to its tokens) or [batch, time]. The loss divides by `normalizer`
    (default: the tokens selected here); the statistics are always means over those tokens.
    ref_log_probs: [batch, time], the reference model's log p of the same tokens (with kl_coeff)."""
    mask = mask.to(log_probs.dtype)
    tokens = mask.sum().clamp(min=1.0)
    divide_by = tokens if normalizer is None else log_probs.new_tensor(max(float(normalizer), 1.0))
    if advantages.dim() == 1:
        advantages = advantages[:, None].expand_as(log_probs)
    log_ratio = (log_probs - old_log_probs) * mask
    ratio = torch.exp(log_ratio)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - clip_ratio, 1.0 + clip_ratio) * advantages
    policy_sum = -(torch.minimum(unclipped, clipped) * mask).sum()
    entropy_sum = (entropy * mask).sum() if entropy is not None else log_probs.new_zeros(())
    kl_sum = log_probs.new_zeros(())
    if ref_log_probs is not None:
        ref_minus_logp = (ref_log_probs - log_probs) * mask
        kl_sum = ((torch.exp(ref_minus_logp) - ref_minus_logp - 1.0) * mask).sum()
    objective_sum = policy_sum - entropy_coeff * entropy_sum + kl_coeff * kl_sum
    loss = objective_sum / divide_by
    policy_loss, mean_entropy = policy_sum / tokens, entropy_sum / tokens
    with torch.no_grad():
        clip_fraction = (((ratio - 1.0).abs() > clip_ratio).to(mask.dtype) * mask).sum() / tokens
        approx_kl = (((ratio - 1.0) - log_ratio) * mask).sum() / tokens
    detached = [t.detach().item() for t in (objective_sum / tokens, policy_loss, mean_entropy, clip_fraction, approx_kl,
                                            kl_sum / tokens)]
    return loss, LossStats(*detached)
