"""LLaMA: the decoder of LLaMA, Mistral and Qwen2, in one readable file.

    input_ids (B, T) ──> embed_tokens ──> Block x n_layer ──> norm ──> lm_head ──> logits (B, T, V)

    Block (pre-RMSNorm):   x = x + self_attn(input_layernorm(x))          rotary positions, grouped keys
                           x = x + mlp(post_attention_layernorm(x))       SwiGLU

What changed since GPT-2, and why:
- RMSNorm instead of LayerNorm: no mean to subtract and no bias, just a learned scale of x / rms(x);
  as good and cheaper (Zhang & Sennrich, 2019).
- Rotary position embeddings (RoPE) instead of a learned position table: each pair of a query's and
  a key's dimensions is rotated by an angle proportional to the position, so their dot product
  depends on the distance between the two tokens only (Su et al., 2021). There are no position
  parameters, and left padding or a packed conversation's restart at 0 changes no score.
- Grouped-query attention: ``n_kv_head`` key/value heads, each shared by ``n_head / n_kv_head``
  query heads. The KV cache, which bounds how many sequences fit in memory while generating,
  shrinks by that factor (Ainslie et al., 2023).
- SwiGLU feed-forward: ``down(silu(gate(x)) * up(x))``, a gated unit (Shazeer, 2020).
- Optional biases on q, k and v only: Qwen2's layout.

Parameter names are those of transformers' ``LlamaForCausalLM`` (``model.layers.0.self_attn.q_proj``
...), and the layers are ``nn.Linear`` there too, so weights map one to one; `lmlab.models.hf_llama`
reads and writes its directories. RoPE uses the half-split layout (the first half of each head's
dimensions pairs with the second half), as transformers does.

A forward also takes ``document_ids`` (B, T): several texts packed into one row, each attending to
itself only and counting its positions from 0, so instruction tuning wastes no compute on padding;
and ``branch_ids`` (B, T): one prompt followed by several answers, each seeing the prompt and itself,
so a preference pair's prompt is computed once for both of its answers.
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
    branch_mask,
    causal_mask,
    check_logits_request,
    document_mask,
    document_positions,
    inputs_of,
    positions_in,
)
from lmlab.models.checks import MIN_VOCAB, at_least, divisible, init_scheme, positive, rates
from lmlab.models.init import initialise


@dataclass
class LlamaConfig:
    vocab_size: int = 32000
    block_size: int = 2048  # context length (HF max_position_embeddings)
    n_layer: int = 12
    n_head: int = 12
    n_kv_head: int = 4  # key/value heads; n_head for plain multi-head attention, 1 for multi-query
    n_embd: int = 768
    intermediate_size: int = 0  # the SwiGLU width; 0 picks LLaMA's: 8/3 n_embd, up to a multiple of 32
    rope_theta: float = 10000.0  # RoPE base: larger turns slower, for longer contexts
    rms_norm_eps: float = 1e-6
    tie_embeddings: bool = False  # one matrix for reading and predicting tokens, as small Qwen2 models do
    qkv_bias: bool = False  # biases on the query, key and value projections (Qwen2)
    dropout: float = 0.0

    init: str = "gpt2"  # weight initialisation, a scheme of lmlab.models.init

    def __post_init__(self) -> None:
        if self.intermediate_size == 0:
            self.intermediate_size = -(-8 * self.n_embd // 3 // 32) * 32
        at_least("LLaMA", self, ("vocab_size",), MIN_VOCAB)
        at_least("LLaMA", self, ("block_size", "n_layer", "n_head", "n_kv_head", "n_embd", "intermediate_size"))
        divisible("LLaMA", self, "n_embd", "n_head")
        divisible("LLaMA", self, "n_head", "n_kv_head")
        if (self.n_embd // self.n_head) % 2:
            raise LmlabError(f"LLaMA config: n_embd / n_head = {self.n_embd // self.n_head} must be even "
                             "(RoPE rotates pairs of dimensions)")
        rates("LLaMA", self, ("dropout",))
        positive("LLaMA", self, ("rms_norm_eps", "rope_theta"))
        init_scheme("LLaMA", self)

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head


class RMSNorm(nn.Module):
    def __init__(self, size: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        # In float32 whatever the input, then back, and the scale after the cast: transformers' order,
        # which bfloat16 logits depend on.
        x32 = x.float()
        return self.weight * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)


def rotate_half(x: Tensor) -> Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


class RotaryEmbedding(nn.Module):
    """cos and sin of every position's angles, (block_size, head_dim), computed once in float32.

    Pair i of a head (dimensions i and i + head_dim/2) turns at frequency theta^(-2i/head_dim): the
    first pairs fast, the last ones slowly, like the hands of a clock.
    """

    def __init__(self, config: LlamaConfig):
        super().__init__()
        d = config.head_dim
        inv_freq = 1.0 / (config.rope_theta ** (torch.arange(0, d, 2).float() / d))
        angles = torch.arange(config.block_size).float()[:, None] * inv_freq  # (block, d/2)
        angles = torch.cat((angles, angles), dim=-1)
        # Not weights: rebuilt from the config, so neither saved nor loaded.
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, positions: Tensor | tuple[int, int], dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """cos and sin for `positions`: (B, T) ids, each row its own, or (start, length) shared by all rows."""
        if isinstance(positions, tuple):
            cos, sin = self.cos.narrow(0, *positions), self.sin.narrow(0, *positions)  # (T, d)
        else:
            cos, sin = self.cos[positions][:, None], self.sin[positions][:, None]  # (B, 1, T, d)
        return cos.to(dtype), sin.to(dtype)


class Attention(nn.Module):
    def __init__(self, config: LlamaConfig, layer_index: int):
        super().__init__()
        self.layer_index = layer_index  # which slot of a KVCache is ours
        self.n_head, self.n_kv_head, self.head_dim = config.n_head, config.n_kv_head, config.head_dim
        self.dropout = config.dropout
        kv_size = config.n_kv_head * config.head_dim
        self.q_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.qkv_bias)
        self.k_proj = nn.Linear(config.n_embd, kv_size, bias=config.qkv_bias)
        self.v_proj = nn.Linear(config.n_embd, kv_size, bias=config.qkv_bias)
        self.o_proj = nn.Linear(config.n_embd, config.n_embd, bias=False)

    def rotated_queries_keys(self, x: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor]:
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, nh, T, hd)
        k = self.k_proj(x).view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)  # (B, nkv, T, hd)
        return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor | None, cache: KVCache | None) -> Tensor:
        B, T, C = x.shape
        q, k = self.rotated_queries_keys(x, cos, sin)
        v = self.v_proj(x).view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)
        if cache is not None:  # keys are cached rotated: a past position's angle never changes
            k, v = cache.update(self.layer_index, k, v)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0,
            is_causal=mask is None and T > 1, enable_gqa=self.n_kv_head != self.n_head,
        )  # (B, nh, T, hd); query head h reads key/value head h // (n_head / n_kv_head)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.gate_proj = nn.Linear(config.n_embd, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.n_embd, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.n_embd, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, config: LlamaConfig, layer_index: int):
        super().__init__()
        self.input_layernorm = RMSNorm(config.n_embd, config.rms_norm_eps)
        self.self_attn = Attention(config, layer_index)
        self.post_attention_layernorm = RMSNorm(config.n_embd, config.rms_norm_eps)
        self.mlp = MLP(config)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor | None, cache: KVCache | None) -> Tensor:
        attended = self.self_attn(self.input_layernorm(x), cos, sin, mask, cache)
        x = x + (self.dropout(attended) if self.training else attended)
        thought = self.mlp(self.post_attention_layernorm(x))
        return x + (self.dropout(thought) if self.training else thought)


class Llama(ModelFamily, nn.Module):
    family = "llama"
    config_class = LlamaConfig
    kind = "decoder"
    default_pooling = "last"  # the only position that has read the whole text
    lora_targets = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    exporter = "lmlab.models.hf_llama:export_llama"
    packs_documents = True

    @classmethod
    def describe(cls, config: dict[str, Any]) -> str:
        return f"LLaMA {config.get('n_layer')}x{config.get('n_embd')}"

    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.config = config
        self.model = nn.ModuleDict(dict(
            embed_tokens=nn.Embedding(config.vocab_size, config.n_embd),
            layers=nn.ModuleList([Block(config, i) for i in range(config.n_layer)]),
            norm=RMSNorm(config.n_embd, config.rms_norm_eps),
        ))
        self.rotary = RotaryEmbedding(config)
        self.drop = nn.Dropout(config.dropout)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        initialise(self, config.init, n_layer=config.n_layer, output=self.lm_head,
                   residual=[module for name, module in self.named_modules() if name.endswith(("o_proj", "down_proj"))])

    def num_parameters(self, non_embedding: bool = True) -> int:
        """Parameter count, tied weights once; ``non_embedding`` leaves out the input table when it is not
        also the output layer (which computes)."""
        total = sum(p.numel() for p in self.parameters())
        untied = self.lm_head.weight is not self.model.embed_tokens.weight
        return total - self.model.embed_tokens.weight.numel() if non_embedding and untied else total

    def flops_per_token(self, seq_len: int) -> int:
        """Training FLOPs per token: 6N for the weights plus 12 * n_layer * n_embd * seq_len for attention."""
        c = self.config
        return 6 * self.num_parameters() + 12 * c.n_layer * c.n_embd * seq_len

    def new_cache(self, batch_size: int, max_len: int) -> KVCache:
        """An empty KV cache of `n_kv_head` heads (not n_head: the saving GQA exists for)."""
        if max_len > self.config.block_size:
            raise LmlabError(
                f"a cache of {max_len} positions exceeds the model's context of {self.config.block_size}"
            )
        weight = self.model.embed_tokens.weight  # floating point even when the linear layers are int8
        device_type = weight.device.type
        autocast = torch.is_autocast_enabled(device_type)
        dtype = torch.get_autocast_dtype(device_type) if autocast else weight.dtype
        shape = (batch_size, self.config.n_kv_head, max_len, self.config.head_dim)
        return KVCache(self.config.n_layer, shape, dtype, weight.device)

    @property
    def hidden_size(self) -> int:
        return self.config.n_embd

    def input_embeddings(self) -> nn.Embedding:
        return self.model.embed_tokens

    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        labels: Tensor | None = None,
        cache: KVCache | None = None,
        last_token_only: bool = False,
        inputs_embeds: Tensor | None = None,
        document_ids: Tensor | None = None,
        logits_at: Tensor | None = None,
        branch_ids: Tensor | None = None,
    ) -> LMOutput:
        """Logits for every position of `input_ids` (B, T), or only the last one if asked.

        - ``attention_mask`` (B, past + T): 1 for tokens, 0 for left padding, covering cached positions.
        - ``labels`` (B, T): the token that should FOLLOW each position (no shift here; -100 = ignore).
        - ``cache``: keys and values of earlier positions; this call appends T more.
        - ``inputs_embeds`` (B, T, C): vectors to read instead of looking `input_ids` up (prompt tuning).
        - ``document_ids`` (B, T): which packed text each token belongs to (training only, no cache).
        - ``logits_at`` (B, T) bool: only these positions' logits, as (N, V) (`check_logits_request`).
        - ``branch_ids`` (B, T): 0 on a prompt, 1, 2, ... on the answers packed after it (`branch_mask`).
        """
        check_logits_request(labels, last_token_only, logits_at)
        x = self._hidden_states(input_ids, attention_mask, cache, inputs_embeds, document_ids, branch_ids)
        if last_token_only:
            x = x[:, -1:, :]
        if logits_at is not None:
            x = x[logits_at]
        logits = self.lm_head(x)  # (B, T, V)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=-100)
        return LMOutput(logits=logits, loss=loss, cache=cache)

    def features(self, input_ids: Tensor | None = None, attention_mask: Tensor | None = None,
                 token_type_ids: Tensor | None = None, inputs_embeds: Tensor | None = None) -> Tensor:
        """The last hidden states (B, T, C), after the final norm: what a task head reads."""
        if token_type_ids is not None:
            raise LmlabError("a LLaMA has no segment embeddings: token_type_ids are for BERT-style encoders")
        return self._hidden_states(input_ids, attention_mask, None, inputs_embeds, None)

    def attention_maps(self, input_ids: Tensor) -> Tensor:
        """Every head's causal attention weights over the tokens `input_ids` (T,): (n_layer, n_head, T, T)."""
        layers = [block.self_attn for block in self.model.layers]
        T = input_ids.numel()
        with torch.no_grad():
            inputs = inputs_of(layers, lambda: self.features(input_ids.view(1, -1)))  # each (1, T, C)
            cos, sin = self.rotary((0, T), inputs[0].dtype)
            maps = []
            for attention, x in zip(layers, inputs, strict=True):
                q, k = attention.rotated_queries_keys(x, cos, sin)
                k = k.repeat_interleave(self.config.n_head // self.config.n_kv_head, dim=1)
                maps.append(attention_weights(q[0], k[0], causal=True))
        return torch.stack(maps)

    def _hidden_states(self, input_ids: Tensor | None, attention_mask: Tensor | None, cache: KVCache | None,
                       inputs_embeds: Tensor | None, document_ids: Tensor | None,
                       branch_ids: Tensor | None = None) -> Tensor:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("give exactly one of input_ids and inputs_embeds")
        x = self.model.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds  # (B, T, C)
        B, T = x.shape[:2]
        past = cache.length if cache is not None else 0
        if past + T > self.config.block_size and branch_ids is None:
            raise LmlabError(f"{past + T} tokens exceed the model's context of {self.config.block_size}")
        if attention_mask is not None and attention_mask.shape != (B, past + T):
            raise ValueError(f"attention_mask is {tuple(attention_mask.shape)}, expected {(B, past + T)}")
        packed = [name for name, ids in (("document_ids", document_ids), ("branch_ids", branch_ids)) if ids is not None]
        if packed and (len(packed) > 1 or cache is not None or attention_mask is not None):
            raise ValueError(f"{' and '.join(packed)} pack texts for training: pass one, with neither a cache nor an "
                             "attention_mask")

        if branch_ids is not None:
            mask = branch_mask(branch_ids)
            # answers packed after one prompt share positions: it is the longest prompt + answer that must fit
            positions: Tensor | tuple[int, int] = positions_in(mask)
            if (span := int(positions[branch_ids >= 0].max()) + 1) > self.config.block_size:
                raise LmlabError(f"{span} tokens exceed the model's context of {self.config.block_size}")
            positions = positions.clamp(max=self.config.block_size - 1)  # padding's, never read
        elif document_ids is not None:
            positions = document_positions(document_ids)
            mask = document_mask(document_ids)
        elif attention_mask is not None:
            # Positions from each row's first real token; RoPE only sees differences, so this is for
            # the cache's sake (a row's positions keep counting from where its text began).
            positions = (attention_mask.long().cumsum(dim=1) - 1).clamp(min=0)[:, past:]
            mask = causal_mask(attention_mask, past, T, x.device)
        else:
            positions = (past, T)
            mask = causal_mask(None, past, T, x.device) if past > 0 and T > 1 else None
        cos, sin = self.rotary(positions, x.dtype)

        x = self.drop(x)
        for block in self.model.layers:
            x = block(x, cos, sin, mask, cache)
        if cache is not None:
            cache.advance(T)
        return self.model.norm(x)
