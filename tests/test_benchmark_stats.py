"""The exact tests the selection benchmark reports (benchmarks/common.py): p values checked against enumerations
worked out by hand for tiny designs, and the smallest p each design can reach."""

from __future__ import annotations

import math

import pytest

from benchmarks.common import holm, kendall_tau, mann_whitney_p, permutation_p, sign_flip_p, spearman_rho


def test_sign_flip_reaches_two_to_the_minus_n_when_every_pair_agrees() -> None:
    assert sign_flip_p([1.0, 2.0, 3.0, 4.0, 5.0]) == pytest.approx(2 ** -5)
    # Observed sum 1+2+3+4−1 = 9; sums ≥ 9 among the 32 sign patterns: +1+2+3+4±1 (11, 9) and −1+2+3+4+1 (9): 3.
    assert sign_flip_p([1.0, 2.0, 3.0, 4.0, -1.0]) == pytest.approx(3 / 32)
    assert sign_flip_p([0.0, 0.0, 0.0]) == 1.0  # no difference: every pattern ties


def test_mann_whitney_reaches_one_over_the_number_of_splits() -> None:
    assert mann_whitney_p([10.0, 11.0, 12.0], [1.0, 2.0, 3.0]) == pytest.approx(1 / math.comb(6, 3))  # 1/20: 3 vs 3
    assert mann_whitney_p([10.0, 11.0, 12.0], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]) == pytest.approx(1 / 84)  # DESIGN §1.6
    assert mann_whitney_p([1.0, 2.0], [3.0, 4.0]) == 1.0


def test_holm_multiplies_the_smallest_by_the_number_of_tests_and_keeps_order() -> None:
    assert holm({"a": 0.01, "b": 0.04}) == {"a": 0.02, "b": 0.04}
    assert holm({"a": 0.03, "b": 0.02}) == {"b": 0.04, "a": 0.04}


def test_rank_correlations() -> None:
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert kendall_tau([1, 2, 3, 4], [40, 30, 20, 10]) == -1.0
    assert spearman_rho([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert permutation_p([1, 2, 3, 4], [1, 2, 3, 4]) == pytest.approx(1 / 24)
