"""What every causal language model in lmlab shares: its output, its KV cache, and the protocol.

A family (GPT today, LLaMA-style tomorrow) is one file under ``lmlab/models``; generation, evaluation
and training only rely on what is written here:

    model(input_ids, attention_mask=None, labels=None, cache=None) -> LMOutput(logits, loss, cache)
    model.new_cache(batch_size, max_len) -> KVCache
    model.config.block_size                 the longest sequence the model can attend over

The KV cache is why generating n tokens costs n small forwards instead of n growing ones: the keys
and values of every past position are kept per layer, and each new token only computes its own.

    layer l:  keys[l]   (B, nh, max_len, hs)   [ k0 k1 ... k_{length-1} | unused ... ]
              values[l] (B, nh, max_len, hs)   written in place at `length`, never concatenated
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor


@dataclass
class LMOutput:
    """What a causal LM returns: logits (B, T, V), the mean loss when labels were given, the cache."""

    logits: Tensor
    loss: Tensor | None = None
    cache: Any = None  # a KVCache for Transformers; a recurrent state or token window for other families


class KVCache:
    """Preallocated keys and values for every layer, filled left to right.

    Tensors are allocated once, at full length, so a decoding step writes one slice instead of
    copying the whole history with ``torch.cat`` (which makes step t cost O(t) in memory traffic).
    """

    def __init__(self, n_layer: int, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device):
        self.max_len = shape[2]  # shape is (B, nh, max_len, hs)
        self.length = 0  # positions filled so far, the same for every layer once a forward has finished
        # Uninitialised: a position is only ever read after a forward has written it.
        self.keys = [torch.empty(shape, dtype=dtype, device=device) for _ in range(n_layer)]
        self.values = [torch.empty(shape, dtype=dtype, device=device) for _ in range(n_layer)]

    def update(self, layer: int, keys: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        """Write new (B, nh, T, hs) keys and values after the filled prefix; return the filled views."""
        start, end = self.length, self.length + keys.size(2)
        if end > self.max_len:
            raise ValueError(f"KV cache holds {self.max_len} positions; {end} were asked for")
        # narrow() is one cheap op where [:, :, a:b] is three; this runs n_layer times per token.
        self.keys[layer].narrow(2, start, end - start).copy_(keys)
        self.values[layer].narrow(2, start, end - start).copy_(values)
        return self.keys[layer].narrow(2, 0, end), self.values[layer].narrow(2, 0, end)  # (B, nh, end, hs)

    def advance(self, steps: int) -> None:
        """Mark `steps` more positions as filled (the model calls this after its last layer)."""
        self.length += steps

    def select_rows(self, rows: Tensor) -> KVCache:
        """A new cache whose row i copies row ``rows[i]`` of this one: one prompt read once, continued several ways."""
        clone = KVCache.__new__(KVCache)
        clone.max_len, clone.length = self.max_len, self.length
        clone.keys = [keys.index_select(0, rows) for keys in self.keys]
        clone.values = [values.index_select(0, rows) for values in self.values]
        return clone


class CausalLM(Protocol):
    """The protocol `lmlab.generate` relies on (besides being an ``nn.Module``).

    Any family that follows it generates unchanged: a forward that reads and extends a cache,
    computes logits for the last position only when asked, and a way to make an empty cache.
    """

    config: Any  # must have block_size

    def __call__(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        labels: Tensor | None = None,
        cache: KVCache | None = None,
        last_token_only: bool = False,
    ) -> LMOutput: ...

    def new_cache(self, batch_size: int, max_len: int) -> KVCache: ...
