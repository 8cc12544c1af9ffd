"""Recurrent language models: a plain (Elman) RNN, an LSTM or a GRU, in one file.

A recurrent model reads the text one token at a time and carries everything it remembers in a
fixed-size state, updated at each step; the next token is predicted from that state alone:

    input_ids (B, T) ──> encoder ──> dropout ──> rnn x n_layer ──> dropout ──> decoder ──> logits (B, T, V)
                                                   ↑      │
                                                state ────┘   h (RNN, GRU) or (h, c) (LSTM)

    rnn   h_t = tanh(W x_t + U h_{t-1} + b)                      forgets quickly: gradients vanish
    lstm  a cell c_t, written and read through input, forget and output gates
          (Hochreiter & Schmidhuber, 1997): it can keep a value for hundreds of steps
    gru   two gates and no separate cell (Cho et al., 2014): nearly an LSTM's quality, fewer weights

The cells are PyTorch's ``nn.RNN``, ``nn.LSTM`` and ``nn.GRU`` (fused kernels, cuDNN on GPU), and
the parameter names (``encoder``, ``rnn``, ``decoder``) are those of PyTorch's word_language_model
example, so its weights load one to one. With ``tie_embeddings`` the decoder reuses the encoder's
matrix (Press & Wolf, 2017; Inan et al., 2017); when ``hidden`` differs from ``n_embd``, a linear
projection brings the top layer's output down to ``n_embd`` first.

The state is also the generation cache (`RecurrentState`): a forward reads it, runs on, and leaves
the final state there, so a new token costs one step whatever came before. Left padding
(``attention_mask`` 0) leaves the state untouched, so a padded prompt ends in the same state as an
unpadded one. Returned as ``LMOutput.cache`` by every forward, the state is what the shared training
loop carries from one window into the next with ``objective: causal_lm_stream``: the text is read as
``batch_size`` contiguous streams, and each window starts from the state the one before ended in,
detached, so gradients flow back ``block_size`` steps only (truncated back-propagation through
time; see `lmlab.train.objectives.StreamingCausalLM`). With ``objective: causal_lm`` every random
window starts from a zero state, as a GPT window starts without a past.

Recommended training settings, measured on the quickstart corpus (Shakespeare + People's Daily, BPE
4096) with an LSTM of n_embd = hidden = 128 and one layer, validation loss read as 32 streams with
the state carried: ``optimizer.lr`` 0.06, far above a GPT's. After 200 steps of 2,048 tokens, lr
0.003 gave 6.62, 0.01 6.51, 0.03 5.64, 0.06 5.50 and 0.1 5.51. On the two-minute CPU budget of the
quickstart (700 steps of 2,048 tokens, cosine schedule, clipping at 1), random windows from a zero
state (``causal_lm``, batch 32 x block 64) reached 4.79, streams with the state carried
(``causal_lm_stream``) 4.83 at batch 128 x block 16 and 4.88 at 64 x 32: on so short a budget,
seeing text from many places each step matters more than a long memory, so many short streams beat
few long ones. A forget-gate bias of 1 (Jozefowicz et al., 2015) made no difference here (5.50
against 5.50), so PyTorch's initialisation is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lmlab.errors import LmlabError
from lmlab.models.base import LMOutput, ModelFamily, check_logits_request
from lmlab.models.checks import MIN_VOCAB, at_least, init_scheme, one_of, rates
from lmlab.models.init import initialise

CELLS: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}

State = Tensor | tuple[Tensor, Tensor]  # h, or (h, c) for an LSTM; each (n_layer, B, hidden)


@dataclass
class RNNConfig:
    cell: str = "lstm"  # "rnn" | "lstm" | "gru"
    vocab_size: int = 50257
    block_size: int = 256  # training window and generation context (the model itself has no limit)
    n_embd: int = 256
    hidden: int = 256
    n_layer: int = 2
    dropout: float = 0.0  # on the embeddings, between layers and before the decoder
    tie_embeddings: bool = True

    init: str = "uniform"  # weight initialisation, a scheme of lmlab.models.init

    def __post_init__(self) -> None:
        one_of("RNN", self, "cell", CELLS)
        at_least("RNN", self, ("vocab_size",), MIN_VOCAB)
        at_least("RNN", self, ("block_size", "n_embd", "hidden", "n_layer"))
        rates("RNN", self, ("dropout",))
        init_scheme("RNN", self)


class RecurrentState:
    """What a recurrent model carries between calls: its state, and how many positions it has read.

    ``state`` is None until the first forward, which the cells read as all zeros.
    """

    def __init__(self, state: State | None = None):
        self.state = state
        self.length = 0

    def detach_(self) -> None:
        """Keep the values but cut the autograd history: back-propagation stops at this boundary."""
        if isinstance(self.state, tuple):
            self.state = tuple(part.detach() for part in self.state)
        elif self.state is not None:
            self.state = self.state.detach()

    def select_rows(self, rows: Tensor) -> RecurrentState:
        """A new state whose row i copies row ``rows[i]`` of this one (rows are dimension 1: layers come first)."""
        clone = RecurrentState()
        if isinstance(self.state, tuple):
            clone.state = tuple(part.index_select(1, rows) for part in self.state)
        elif self.state is not None:
            clone.state = self.state.index_select(1, rows)
        clone.length = self.length
        return clone

    def tensors(self) -> dict[str, Tensor]:
        """The state by name (``h``, and ``c`` for an LSTM), for a training checkpoint; empty before any forward."""
        if self.state is None:
            return {}
        parts = self.state if isinstance(self.state, tuple) else (self.state,)
        return dict(zip("hc", parts, strict=False))

    def load_tensors(self, tensors: dict[str, Tensor]) -> None:
        """Set the state from what `tensors` returned (an empty dict means the zero state)."""
        if not tensors:
            self.state = None
        elif sorted(tensors) == ["h"]:
            self.state = tensors["h"]
        elif sorted(tensors) == ["c", "h"]:
            self.state = (tensors["h"], tensors["c"])
        else:
            raise LmlabError(f"a recurrent state holds h (and c for an LSTM), not {', '.join(sorted(tensors))}")


class RNNLanguageModel(ModelFamily, nn.Module):
    family = "rnn"
    config_class = RNNConfig
    kind = "decoder"
    unbounded_context = True  # the state summarises any length of past: block_size is the training window
    carries_state = True  # its cache can be carried from one training window into the next (``causal_lm_stream``)

    @classmethod
    def describe(cls, config: dict[str, Any]) -> str:
        return f"{config.get('cell', 'rnn').upper()} {config.get('n_layer')}x{config.get('hidden')}"

    def __init__(self, config: RNNConfig):
        super().__init__()
        self.config = config
        self.encoder = nn.Embedding(config.vocab_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        # nn.RNNBase applies its dropout between layers only, and warns when there is one layer.
        between = config.dropout if config.n_layer > 1 else 0.0
        self.rnn = CELLS[config.cell](config.n_embd, config.hidden, config.n_layer, batch_first=True,
                                      dropout=between)
        tie = config.tie_embeddings
        # A tied decoder reads n_embd-wide vectors; a projection bridges a hidden size that differs.
        needs_proj = tie and config.hidden != config.n_embd
        self.proj = nn.Linear(config.hidden, config.n_embd, bias=False) if needs_proj else None
        self.decoder = nn.Linear(config.n_embd if tie else config.hidden, config.vocab_size)
        if tie:
            self.decoder.weight = self.encoder.weight
        initialise(self, config.init, n_layer=config.n_layer, output=self.decoder)

    def num_parameters(self, non_embedding: bool = True) -> int:
        """Parameter count, tied weights once. As for GPT, ``non_embedding`` would leave out position
        embeddings; there are none here (order lives in the recurrence), so it changes nothing."""
        return sum(p.numel() for p in self.parameters())

    def new_cache(self, batch_size: int, max_len: int) -> RecurrentState:
        """A zero state; both arguments are accepted for the interface, since its size is fixed."""
        return RecurrentState()

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        labels: Tensor | None = None,
        cache: RecurrentState | None = None,
        last_token_only: bool = False,
        logits_at: Tensor | None = None,
    ) -> LMOutput:
        """Logits (B, T, V) predicting the token after each position of `input_ids` (B, T).

        Same contract as `lmlab.models.gpt.GPT.forward` (``attention_mask`` (B, past + T) with 0 for
        left padding, ``labels`` aligned, no shift, -100 = ignore). ``cache`` holds the state to
        start from and receives the final one; without it the state starts at zero, and a new
        `RecurrentState` with the final state is returned either way.
        """
        B, T = input_ids.size()
        check_logits_request(labels, last_token_only, logits_at)
        cache = cache if cache is not None else RecurrentState()
        real = None if attention_mask is None else attention_mask[:, -T:].bool()  # (B, T)

        x = self.drop(self.encoder(input_ids))  # (B, T, n_embd)
        if real is None or bool(real.all()):
            out, cache.state = self.rnn(x, cache.state)  # (B, T, hidden): the whole sequence in one kernel
        else:
            out, cache.state = self._run_with_padding(x, cache.state, real)
        cache.length += T
        if last_token_only:
            out = out[:, -1:]  # decoding needs one distribution; skip the V x d matmul for the rest
        if logits_at is not None:
            out = out[logits_at]
        out = self.drop(out)
        if self.proj is not None:
            out = self.proj(out)  # (B, T, n_embd), to meet the tied decoder
        logits = self.decoder(out)  # (B, T, V)

        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=-100)
        return LMOutput(logits=logits, loss=loss, cache=cache)

    def _run_with_padding(self, x: Tensor, state: State | None, real: Tensor) -> tuple[Tensor, State]:
        """Step through time so that padded positions (``real`` False) leave each row's state as it was.

        A padding token fed to the cell would still move the state (biases alone do), so the padded
        rows keep their old state instead. Only prompts of uneven length come here, never training.
        """
        if state is None:
            zeros = x.new_zeros(self.config.n_layer, x.size(0), self.config.hidden)
            state = (zeros, zeros) if isinstance(self.rnn, nn.LSTM) else zeros
        outputs = []
        for t in range(x.size(1)):
            out, stepped = self.rnn(x[:, t : t + 1], state)  # out (B, 1, hidden)
            keep = real[:, t][None, :, None]  # (1, B, 1), broadcast over layers and units
            if isinstance(state, tuple):
                state = tuple(torch.where(keep, new, old) for new, old in zip(stepped, state, strict=True))
            else:
                state = torch.where(keep, stepped, state)
            outputs.append(out)
        return torch.cat(outputs, dim=1), state
