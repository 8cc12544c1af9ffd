"""The neural probabilistic language model of Bengio, Ducharme, Vincent and Jauvin (2003).

An n-gram model with the counting replaced by a small network: the next token is predicted from
the n-1 tokens before it, each looked up in a shared table of learned word vectors (Bengio's C).
Similar words get similar vectors, so what is learned about "the cat sat" transfers to "a dog sat":
the generalisation that counts of exact n-grams cannot give.

    tokens t-n+2 .. t ──> C (embeddings, m each) ──> concatenate: x ((n-1)·m)
                                                       ├──> tanh(H x + d) ──> U · + b ──┐
                                                       └──> W x  (direct connections) ──┴──> logits (V)

    y = b + W x + U tanh(d + H x)          Bengio's equation (1); W is optional (``direct``)

Every position of a (B, T) batch is predicted at once: the windows of n-1 token ids ending at each
position are cut with ``unfold`` (a strided view), then embedded and pushed through the network as
one (B, T) batch. Positions whose window reaches before the start of the sequence see a padding
token there, id ``vocab_size``, whose embedding is fixed at zero ("nothing here"); the same padding
stands in for the left padding of a batch (``attention_mask`` 0), so a padded prompt gets exactly
the logits of an unpadded one.

Generation needs no KV cache, only the last n-1 tokens of each sequence: `TokenWindow`. The model
has no limit on length; ``block_size`` is only the context the shared training loop and generation
use by default, as they do for every family.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lmlab.models.base import LMOutput, ModelFamily, check_logits_request
from lmlab.models.checks import MIN_VOCAB, at_least, init_scheme, rates
from lmlab.models.init import initialise


@dataclass
class MLPConfig:
    vocab_size: int = 50257
    block_size: int = 256  # training window and generation context (the model itself has no limit)
    context: int = 4  # n-1: how many previous tokens the prediction sees (Bengio's best: n = 5)
    n_embd: int = 64  # m: size of each token's vector
    hidden: int = 256  # h: hidden tanh units
    direct: bool = True  # W: a linear path from the embeddings straight to the output
    dropout: float = 0.0

    init: str = "torch"  # weight initialisation, a scheme of lmlab.models.init

    def __post_init__(self) -> None:
        at_least("MLP", self, ("vocab_size",), MIN_VOCAB)
        at_least("MLP", self, ("block_size", "context", "n_embd", "hidden"))
        rates("MLP", self, ("dropout",))
        init_scheme("MLP", self)


class TokenWindow:
    """The generation cache of a window model: the last `context` tokens of each sequence.

    ``tokens`` (B, context) starts as all padding; each forward shifts its new tokens in.
    ``length`` counts the positions consumed so far, as `lmlab.models.base.KVCache` does.
    """

    def __init__(self, tokens: Tensor):
        self.tokens = tokens
        self.length = 0

    def select_rows(self, rows: Tensor) -> TokenWindow:
        """A new window whose row i copies row ``rows[i]`` of this one."""
        clone = TokenWindow(self.tokens.index_select(0, rows))
        clone.length = self.length
        return clone


class BengioMLP(ModelFamily, nn.Module):
    family = "mlp"
    config_class = MLPConfig
    kind = "decoder"
    unbounded_context = True  # it only ever sees its last `context` tokens, however long the text

    @classmethod
    def describe(cls, config: dict[str, Any]) -> str:
        return f"MLP, {config.get('context')} tokens"

    def __init__(self, config: MLPConfig):
        super().__init__()
        self.config = config
        self.pad_id = config.vocab_size  # one extra row: the token before the text begins
        window = config.context * config.n_embd
        self.embed = nn.Embedding(config.vocab_size + 1, config.n_embd, padding_idx=self.pad_id)  # C
        self.hidden = nn.Linear(window, config.hidden)  # H and d
        self.drop = nn.Dropout(config.dropout)
        self.output = nn.Linear(config.hidden, config.vocab_size)  # U and b
        self.direct = nn.Linear(window, config.vocab_size, bias=False) if config.direct else None  # W
        initialise(self, config.init, output=self.output)

    def num_parameters(self, non_embedding: bool = True) -> int:
        """Parameter count. As for GPT, ``non_embedding`` would leave out position embeddings; there
        are none here (a token's place in the window is its place in the concatenation), so the
        count is the same either way."""
        return sum(p.numel() for p in self.parameters())

    def new_cache(self, batch_size: int, max_len: int) -> TokenWindow:
        """An all-padding window for `batch_size` sequences; `max_len` is accepted for the interface
        and not needed, since the window never grows."""
        pad = torch.full((batch_size, self.config.context), self.pad_id, device=self.embed.weight.device)
        return TokenWindow(pad)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        labels: Tensor | None = None,
        cache: TokenWindow | None = None,
        last_token_only: bool = False,
        logits_at: Tensor | None = None,
    ) -> LMOutput:
        """Logits (B, T, V) predicting the token after each position of `input_ids` (B, T).

        Same contract as `lmlab.models.gpt.GPT.forward`: ``attention_mask`` (B, past + T) with 0 for
        left padding, ``labels`` (B, T) aligned with the positions (no shift; -100 = ignore), and a
        ``cache`` holding the tokens before this call, updated in place.
        """
        B, T = input_ids.size()
        check_logits_request(labels, last_token_only, logits_at)
        n_before = self.config.context
        if attention_mask is not None:
            input_ids = input_ids.masked_fill(attention_mask[:, -T:] == 0, self.pad_id)
        before = cache.tokens if cache is not None else input_ids.new_full((B, n_before), self.pad_id)
        tokens = torch.cat([before, input_ids], dim=1)  # (B, context + T)
        if cache is not None:
            cache.tokens = tokens[:, -n_before:]
            cache.length += T

        # Window k covers tokens[k : k + context]; the one ending at input position t starts at t + 1.
        windows = tokens.unfold(1, n_before, 1)[:, 1:]  # (B, T, context)
        if last_token_only:
            windows = windows[:, -1:]  # decoding needs one distribution
        if logits_at is not None:
            windows = windows[logits_at]
        x = self.embed(windows).flatten(-2)  # (B, T, context * n_embd), oldest token first
        logits = self.output(self.drop(torch.tanh(self.hidden(x))))  # (B, T, V)
        if self.direct is not None:
            logits = logits + self.direct(x)

        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=-100)
        return LMOutput(logits=logits, loss=loss, cache=cache)
