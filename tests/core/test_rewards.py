import pytest

from azr.advantages import AdvantageWeighting, group_advantages, trr_advantages
from azr.rewards import REFERENCE_EXTREME_REWARD, proposer_reward, solve_rate, solver_reward
from azr.tasks import GROUPS, Role, TaskType


def test_solver_rewards():
    assert solver_reward(True, True) == 1.0
    assert solver_reward(True, False) == -0.5
    assert solver_reward(False, True) == -1.0   # a right answer in the wrong format is a format error
    assert solver_reward(False, False) == -1.0


def test_proposer_learnability_reward():
    assert proposer_reward(True, True, 0.25) == pytest.approx(0.75)
    assert proposer_reward(True, True, 0.75) == pytest.approx(0.25)


def test_proposer_extreme_solve_rates_get_the_paper_value_by_default():
    assert proposer_reward(True, True, 0.0) == 0.0
    assert proposer_reward(True, True, 1.0) == 0.0
    assert proposer_reward(True, True, 1.0, extreme_reward=REFERENCE_EXTREME_REWARD) == -0.5
    assert proposer_reward(True, True, 0.0, extreme_reward=REFERENCE_EXTREME_REWARD) == -0.5


def test_invalid_or_badly_formatted_proposals():
    assert proposer_reward(True, False, None) == -1.0
    assert proposer_reward(False, True, 0.5) == -1.0
    with pytest.raises(ValueError):
        proposer_reward(True, True, None)


def test_solve_rate():
    assert solve_rate([True, False, False, False]) == 0.25
    with pytest.raises(ValueError):
        solve_rate([])


def test_group_advantages_are_normalised_within_the_group():
    adv = group_advantages([1.0, -0.5, -0.5, -1.0])
    assert sum(adv) == pytest.approx(0.0, abs=1e-9)
    mean = -0.25
    std = ((1.25**2 + 0.25**2 + 0.25**2 + 0.75**2) / 4) ** 0.5
    assert adv[0] == pytest.approx((1.0 - mean) / (std + 1e-6))


def test_a_group_that_all_fails_teaches_nothing():
    assert group_advantages([-1.0] * 4) == [0.0] * 4
    assert group_advantages([0.3]) == [0.0]


def test_groups_are_independent():
    rewards = {g: [0.0, 1.0] for g in GROUPS}
    rewards[(TaskType.DEDUCTION, Role.SOLVE)] = [100.0, 101.0]
    adv = trr_advantages(rewards)
    assert adv[(TaskType.DEDUCTION, Role.SOLVE)] == pytest.approx(adv[(TaskType.INDUCTION, Role.PROPOSE)])
    assert len(adv) == 6


def test_token_weighting_counts_long_responses_more():
    rewards, lengths = [1.0, 0.0], [9, 1]
    sample = group_advantages(rewards, lengths, AdvantageWeighting.SAMPLE)
    token = group_advantages(rewards, lengths, AdvantageWeighting.TOKEN)
    assert sample[0] == pytest.approx(-sample[1])
    # token mean is 0.9, so the long response is barely above it and the short one far below
    assert token[0] == pytest.approx((1.0 - 0.9) / (0.3 + 1e-6))
    assert token[1] == pytest.approx((0.0 - 0.9) / (0.3 + 1e-6))
    with pytest.raises(ValueError):
        group_advantages(rewards, None, AdvantageWeighting.TOKEN)
