"""GPT: the decoder-only Transformer of GPT-2, in one readable file.

    input_ids (B, T) ──> wte + wpe ──> dropout ──> Block x n_layer ──> ln_f ──> lm_head ──> logits (B, T, V)

    Block (pre-LayerNorm):   x = x + attn(ln_1(x))      every token looks back at the ones before it
                             x = x + mlp(ln_2(x))       then thinks on its own

Parameter names follow the GPT-2 checkpoints (``transformer.h.0.attn.c_attn.weight`` ...), so
weights map one to one onto Hugging Face's; the layers are ``nn.Linear`` here, and the transposition
to GPT-2's ``Conv1D`` layout is `lmlab.models.hf`'s business. The token embedding and the output
layer share one matrix ("tied"), as in GPT-2.

Two things beyond training matter for generation (see `lmlab.models.base`):
- a left-padded batch passes ``attention_mask`` (1 = token, 0 = padding); positions are counted
  from each row's first real token, so a padded prompt gets the same logits as an unpadded one;
- a `KVCache` keeps past keys and values, so each new token costs one position's work.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lmlab.errors import LmlabError
from lmlab.models.base import (
    KVCache,
    LMOutput,
    ModelFamily,
    attention_weights,
    causal_mask,
    check_logits_request,
    inputs_of,
)
from lmlab.models.checks import MIN_VOCAB, at_least, divisible, init_scheme, positive, rates
from lmlab.models.init import initialise


@dataclass
class GPTConfig:
    vocab_size: int = 50257
    block_size: int = 1024  # context length (HF n_positions)
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True  # biases in Linear and LayerNorm; False is a little faster and as good
    layer_norm_eps: float = 1e-5

    init: str = "gpt2"  # weight initialisation, a scheme of lmlab.models.init

    def __post_init__(self) -> None:
        at_least("GPT", self, ("vocab_size",), MIN_VOCAB)
        at_least("GPT", self, ("block_size", "n_layer", "n_head", "n_embd"))
        divisible("GPT", self, "n_embd", "n_head")
        rates("GPT", self, ("dropout",))
        positive("GPT", self, ("layer_norm_eps",))
        init_scheme("GPT", self)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig, layer_index: int):
        super().__init__()
        self.layer_index = layer_index  # which slot of a KVCache is ours
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v in one matmul
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, mask: Tensor | None, cache: KVCache | None) -> Tensor:
        B, T, C = x.size()
        hs = C // self.n_head
        qkv = self.c_attn(x).view(B, T, 3, self.n_head, hs).permute(2, 0, 3, 1, 4)  # (3, B, nh, T, hs)
        q, k, v = qkv.unbind(0)  # each (B, nh, T, hs)
        if cache is not None:
            k, v = cache.update(self.layer_index, k, v)  # (B, nh, past + T, hs)
        # Without an explicit mask the keys are exactly the queries' own positions (no past), so the
        # plain causal triangle applies and SDPA can pick its fastest kernel.
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0,
            is_causal=mask is None and T > 1,
        )  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(B, T, C)  # re-assemble all head outputs side by side
        y = self.c_proj(y)
        # Dropout is the identity outside training, and a module call costs about as much as a
        # one-token matmul: decoding one token at a time is overhead-bound, so skip it there.
        return self.resid_dropout(y) if self.training else y


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        # The tanh approximation is GPT-2's "gelu_new"; the exact erf GELU would drift from its logits.
        x = self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))
        return self.dropout(x) if self.training else x  # skipped outside training, as in attention


class Block(nn.Module):
    def __init__(self, config: GPTConfig, layer_index: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias)
        self.attn = CausalSelfAttention(config, layer_index)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: Tensor, mask: Tensor | None, cache: KVCache | None) -> Tensor:
        x = x + self.attn(self.ln_1(x), mask, cache)
        x = x + self.mlp(self.ln_2(x))
        return x


class GPT(ModelFamily, nn.Module):
    family = "gpt"
    config_class = GPTConfig
    kind = "decoder"
    default_pooling = "last"  # the only position that has read the whole text
    lora_targets = ("c_attn",)  # the fused q/k/v projection, PEFT's default for GPT-2
    lora_fan_in_fan_out = True  # GPT-2's Conv1D stores (in, out)
    exporter = "lmlab.models.hf:export_gpt2"

    @classmethod
    def describe(cls, config: dict[str, Any]) -> str:
        return f"GPT {config.get('n_layer')}x{config.get('n_embd')}"

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config, i) for i in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # Tied embeddings: reading a token and predicting it use one matrix, which saves V x d
        # parameters and helps small models (Press & Wolf, 2017).
        self.transformer.wte.weight = self.lm_head.weight
        initialise(self, config.init, n_layer=config.n_layer, output=self.lm_head,
                   residual=[module for name, module in self.named_modules() if name.endswith("c_proj")])

    def num_parameters(self, non_embedding: bool = True) -> int:
        """Parameter count, tied weights once.

        As in nanoGPT, ``non_embedding`` leaves out the position embeddings only: the token
        embeddings are also the output layer's weights, which do compute, so they stay counted.
        """
        total = sum(p.numel() for p in self.parameters())
        return total - self.transformer.wpe.weight.numel() if non_embedding else total

    def flops_per_token(self, seq_len: int) -> int:
        """Training FLOPs per token (forward + backward) at context `seq_len`, nanoGPT's estimate.

        6N for the weight matmuls (2 forward + 4 backward per parameter, N = ``num_parameters()``),
        plus 12 * n_layer * n_embd * seq_len for attention's scores and weighted sums, which grow
        with the context and have no parameters (PaLM paper, appendix B).
        """
        c = self.config
        return 6 * self.num_parameters() + 12 * c.n_layer * c.n_embd * seq_len

    def new_cache(self, batch_size: int, max_len: int) -> KVCache:
        """An empty KV cache for `batch_size` sequences of up to `max_len` positions.

        Its dtype is what the layers will produce: bfloat16 under an active autocast, else the weights'.
        """
        if max_len > self.config.block_size:
            raise LmlabError(
                f"a cache of {max_len} positions exceeds the model's context of {self.config.block_size}"
            )
        weight = self.transformer.wte.weight  # floating point even when the linear layers are int8
        device_type = weight.device.type
        autocast = torch.is_autocast_enabled(device_type)
        dtype = torch.get_autocast_dtype(device_type) if autocast else weight.dtype
        head_size = self.config.n_embd // self.config.n_head
        shape = (batch_size, self.config.n_head, max_len, head_size)
        return KVCache(self.config.n_layer, shape, dtype, weight.device)

    @property
    def hidden_size(self) -> int:
        return self.config.n_embd

    def input_embeddings(self) -> nn.Embedding:
        return self.transformer.wte

    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        labels: Tensor | None = None,
        cache: KVCache | None = None,
        last_token_only: bool = False,
        inputs_embeds: Tensor | None = None,
        logits_at: Tensor | None = None,
    ) -> LMOutput:
        """Logits for every position of `input_ids` (B, T), or only the last one if asked.

        - ``attention_mask`` (B, past + T): 1 for tokens, 0 for left padding, covering the cached
          positions too (the Hugging Face convention).
        - ``labels`` (B, T): the token that should FOLLOW each input position (no shift is done
          here; -100 = ignore). The loss is their mean cross-entropy, computed in float32.
        - ``cache``: keys and values of earlier positions; this call appends T more.
        - ``inputs_embeds`` (B, T, C): vectors to read instead of looking `input_ids` up (prompt
          tuning prepends trained ones); position embeddings are still added.
        - ``logits_at`` (B, T) bool: only these positions' logits, as (N, V): a loss that reads a few
          positions (a preference's answer tokens) skips the V x d matmul for the rest.
        """
        check_logits_request(labels, last_token_only, logits_at)
        x = self._hidden_states(input_ids, attention_mask, cache, inputs_embeds)
        if last_token_only:
            x = x[:, -1:, :]  # decoding needs one distribution; skip the V x d matmul for the rest
        if logits_at is not None:
            x = x[logits_at]
        logits = self.lm_head(x)  # (B, T, V)

        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=-100)
        return LMOutput(logits=logits, loss=loss, cache=cache)

    def features(self, input_ids: Tensor | None = None, attention_mask: Tensor | None = None,
                 token_type_ids: Tensor | None = None, inputs_embeds: Tensor | None = None) -> Tensor:
        """The last hidden states (B, T, C), after the final LayerNorm: what a task head reads.

        ``token_type_ids`` is accepted for the interface every backbone shares; a GPT has no segments.
        """
        if token_type_ids is not None:
            raise LmlabError("a GPT has no segment embeddings: token_type_ids are for BERT-style encoders")
        return self._hidden_states(input_ids, attention_mask, None, inputs_embeds)

    def attention_maps(self, input_ids: Tensor) -> Tensor:
        """Every head's causal attention weights over the tokens `input_ids` (T,): (n_layer, n_head, T, T)."""
        layers = [block.attn for block in self.transformer.h]
        with torch.no_grad():
            inputs = inputs_of(layers, lambda: self.features(input_ids.view(1, -1)))  # each (1, T, C)
            maps = []
            for attention, x in zip(layers, inputs, strict=True):
                q, k, _ = attention.c_attn(x).split(self.config.n_embd, dim=-1)
                heads = [t.view(x.size(1), self.config.n_head, -1).transpose(0, 1) for t in (q, k)]  # (nh, T, hs)
                maps.append(attention_weights(*heads, causal=True))
        return torch.stack(maps)

    def _hidden_states(self, input_ids: Tensor | None, attention_mask: Tensor | None, cache: KVCache | None,
                       inputs_embeds: Tensor | None) -> Tensor:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("give exactly one of input_ids and inputs_embeds")
        tokens = self.transformer.wte(input_ids) if inputs_embeds is None else inputs_embeds  # (B, T, C)
        B, T = tokens.shape[:2]
        past = cache.length if cache is not None else 0
        if past + T > self.config.block_size:
            raise LmlabError(f"{past + T} tokens exceed the model's context of {self.config.block_size}")
        if attention_mask is not None and attention_mask.shape != (B, past + T):
            raise ValueError(f"attention_mask is {tuple(attention_mask.shape)}, expected {(B, past + T)}")

        wpe = self.transformer.wpe
        if attention_mask is None:
            places = wpe.weight.narrow(0, past, T)  # (T, C) rows past .. past + T - 1: a view, no lookup
        else:
            # Count positions from each row's first real token; padding gets 0, which it never uses.
            places = wpe((attention_mask.long().cumsum(dim=1) - 1).clamp(min=0)[:, past:])  # (B, T, C)
        # No mask is needed when SDPA's own causal triangle is right: no padding, and either no past
        # (queries and keys are the same positions) or a single query (it may see everything cached).
        needs_mask = attention_mask is not None or (past > 0 and T > 1)
        mask = causal_mask(attention_mask, past, T, tokens.device) if needs_mask else None

        x = self.transformer.drop(tokens + places)  # (B, T, C)
        for block in self.transformer.h:
            x = block(x, mask, cache)
        if cache is not None:
            cache.advance(T)
        return self.transformer.ln_f(x)
