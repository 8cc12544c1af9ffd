"""McNemar's exact test of two systems' right/wrong outcomes on the same items, against statsmodels."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.contingency_tables import mcnemar as statsmodels_mcnemar

from lmlab.errors import LmlabError
from lmlab.metrics.paired import mcnemar


@pytest.mark.parametrize("seed", range(6))
def test_the_p_value_is_statsmodels_exact_mcnemar(seed):
    rng = np.random.default_rng(seed)
    first = rng.random(300) < 0.3
    second = np.where(rng.random(300) < 0.1 * (seed + 1), ~first, first)  # some items flip
    result = mcnemar(first.tolist(), second.tolist())
    table = [[int((first & second).sum()), int((first & ~second).sum())],
             [int((~first & second).sum()), int((~first & ~second).sum())]]
    assert (result.gained, result.lost) == (table[1][0], table[0][1])
    assert result.p_value == pytest.approx(statsmodels_mcnemar(table, exact=True).pvalue, rel=1e-12)


def test_identical_outcomes_say_nothing_and_a_one_sided_swing_is_significant():
    same = [True, False, True]
    assert mcnemar(same, same).p_value == 1.0
    assert mcnemar([False] * 12, [True] * 12).p_value == pytest.approx(2 / 2 ** 12)


def test_outcomes_of_different_items_are_refused():
    with pytest.raises(LmlabError, match="same items"):
        mcnemar([True], [True, False])
