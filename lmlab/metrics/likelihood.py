"""Language-model figures, from a total negative log-likelihood `nll` in nats.

Perplexity is per predicted unit, so it depends on the units (tokens, words, characters) and only
compares models that share them. Bits per byte and per character divide the same total by the text's
UTF-8 bytes or Unicode characters instead: every model pays for the same text, whatever its
tokenizer. A Chinese character is three bytes, so its bits per character are about three times its
bits per byte.
"""

from __future__ import annotations

import math


def perplexity(nll: float, units: int) -> float:
    """exp(nll / units), or infinity where that is beyond the range of a float."""
    exponent = nll / units
    return math.exp(exponent) if exponent < 709.0 else math.inf


def bits_per_byte(nll: float, utf8_bytes: int) -> float:
    return nll / math.log(2) / utf8_bytes


def bits_per_character(nll: float, characters: int) -> float:
    return nll / math.log(2) / characters
