"""Is one system better than another on the same items? McNemar's exact test of paired right/wrong outcomes.

Two runs scored on the same held-out questions agree on most of them; only the items where they differ
say anything. Under "no difference" each such item is a fair coin (gained or lost), so the two-sided
p-value is twice the binomial tail of the smaller count, capped at 1 (statsmodels' ``mcnemar(exact=True)``).
A gain of 0.01 on 1,000 items is 10 items; whether it is noise depends on how many others moved the other way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from math import comb

from lmlab.errors import LmlabError


@dataclass(frozen=True)
class PairedComparison:
    gained: int  # items the second system gets right and the first wrong
    lost: int  # the other way round
    p_value: float  # McNemar's exact two-sided p: the chance of so uneven a split if neither is better

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def mcnemar(first: Sequence[bool], second: Sequence[bool]) -> PairedComparison:
    """Compare two systems' right/wrong outcomes on the same items, in the same order."""
    if len(first) != len(second):
        raise LmlabError(f"paired comparison: {len(first)} outcomes against {len(second)}; score the same items")
    gained = sum(1 for a, b in zip(first, second, strict=True) if b and not a)
    lost = sum(1 for a, b in zip(first, second, strict=True) if a and not b)
    discordant = gained + lost
    tail = sum(comb(discordant, k) for k in range(min(gained, lost) + 1)) / 2 ** discordant
    return PairedComparison(gained, lost, min(1.0, 2 * tail))
