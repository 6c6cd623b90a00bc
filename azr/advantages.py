"""TRR++: Task-Relative REINFORCE++ advantages (docs/method.md, part 5).

Each of the six (task type, role) groups is normalised on its own:

    A_i = (r_i - mean_g) / (std_g + eps)

and A_i is broadcast to every token of response i. With weighting "sample" (the paper,
the project's default) every response counts once in mean_g and std_g; with "token" (the
reference code) every token does, so long responses weigh more. std is the population
standard deviation, so a group of one response gets advantage 0 rather than NaN.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from typing import TypeVar

EPS = 1e-6
K = TypeVar("K")


class AdvantageWeighting(str, enum.Enum):
    SAMPLE = "sample"
    TOKEN = "token"


def group_advantages(rewards: Sequence[float], lengths: Sequence[int] | None = None,
                     weighting: AdvantageWeighting = AdvantageWeighting.SAMPLE, eps: float = EPS) -> list[float]:
    """Advantages of the responses of one group."""
    if not rewards:
        return []
    if weighting is AdvantageWeighting.TOKEN:
        if lengths is None or len(lengths) != len(rewards):
            raise ValueError("token weighting needs one length per response")
        weights = [float(n) for n in lengths]
    else:
        weights = [1.0] * len(rewards)
    total = sum(weights)
    if total <= 0:
        raise ValueError("responses must have positive lengths")
    mean = sum(w * r for w, r in zip(weights, rewards)) / total
    std = math.sqrt(sum(w * (r - mean) ** 2 for w, r in zip(weights, rewards)) / total)
    return [(r - mean) / (std + eps) for r in rewards]


def trr_advantages(rewards: Mapping[K, Sequence[float]], lengths: Mapping[K, Sequence[int]] | None = None,
                   weighting: AdvantageWeighting = AdvantageWeighting.SAMPLE, eps: float = EPS) -> dict[K, list[float]]:
    """Advantages for every group, each normalised within its own group only."""
    return {group: group_advantages(rs, None if lengths is None else lengths[group], weighting, eps)
            for group, rs in rewards.items()}
