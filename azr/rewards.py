"""Rewards: one scalar per response, on its last token (docs/method.md, part 3)."""

from __future__ import annotations

from collections.abc import Sequence

SOLVER_CORRECT = 1.0
SOLVER_WRONG = -0.5       # well formatted, wrong
FORMAT_ERROR = -1.0       # solver or proposer
INVALID_PROPOSAL = -1.0   # parse or validation failed
PAPER_EXTREME_REWARD = 0.0      # the paper's value when s-bar is 0 or 1 [project default]
REFERENCE_EXTREME_REWARD = -0.5  # what the reference code uses instead


def solver_reward(well_formatted: bool, correct: bool) -> float:
    """1 if correct, -0.5 if well formatted but wrong, -1 on a format error.

    Induction is graded all-or-nothing before it gets here: correct only if every hidden pair passes.
    """
    if not well_formatted:
        return FORMAT_ERROR
    return SOLVER_CORRECT if correct else SOLVER_WRONG


def solve_rate(outcomes: Sequence[bool]) -> float:
    """s-bar: the fraction of the n Monte-Carlo solver answers that were correct."""
    if not outcomes:
        raise ValueError("the Monte-Carlo estimate needs at least one solver sample")
    return sum(outcomes) / len(outcomes)


def proposer_reward(well_formatted: bool, valid: bool, s_bar: float | None,
                    extreme_reward: float = PAPER_EXTREME_REWARD) -> float:
    """Learnability reward r = 1 - s_bar, for tasks that are neither trivial nor impossible.

    An invalid proposal or a format error is -1; a valid task that every sample solves
    (s_bar = 1) or none does (s_bar = 0) earns `extreme_reward`.
    """
    if not well_formatted or not valid:
        return INVALID_PROPOSAL
    if s_bar is None or not 0.0 <= s_bar <= 1.0:
        raise ValueError(f"a valid proposal needs a solve rate in [0, 1], got {s_bar}")
    if s_bar in (0.0, 1.0):
        return extreme_reward
    return 1.0 - s_bar
