"""BERT: the bidirectional Transformer encoder, with its two pretraining heads, in one readable file.

    input_ids (B, T)  ──> word + position + segment embeddings ──> LayerNorm ──> dropout
                      ──> Layer x n_layer ──> hidden_states (B, T, H)
                              ├──> MLM head (dense, GELU, LayerNorm, tied decoder) ──> logits (B, T, V)
                              └──> [CLS] ──> pooler (dense, tanh) ──> pooled (B, H) ──> NSP head ──> (B, 2)

    Layer (post-LayerNorm, "Add & Norm" after each sublayer, as in the 2017 Transformer):
        x = LayerNorm(x + dropout(W_o attn(x)))              every token looks at every real token
        x = LayerNorm(x + dropout(W_2 gelu(W_1 x)))          then thinks on its own

Unlike GPT, attention is not causal: each token sees the whole sentence, left and right. That is why
BERT cannot be trained to predict the next token; it learns by filling in masked ones (MLM) and by
telling whether sentence B really followed sentence A (NSP).

Parameter names follow the Hugging Face BERT checkpoints (``bert.encoder.layer.0.attention.self.query.weight``
...), so real weights map one to one; `lmlab.models.hf_bert` reads and writes that directory layout.
The MLM decoder shares its matrix with the word embeddings ("tied"), as in BERT.

A batch is RIGHT-padded: ``attention_mask`` (B, T) is 1 for tokens and 0 for padding; padding keys
get no attention, and positions count from 0 at the left, so padding never moves a real token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lmlab.errors import LmlabError
from lmlab.models.base import ModelFamily, attention_weights, inputs_of
from lmlab.models.checks import MIN_VOCAB, ModelConfigError, at_least, divisible, init_scheme, positive, rates
from lmlab.models.init import initialise


@dataclass
class BertConfig:
    vocab_size: int = 30522
    hidden_size: int = 768
    n_layer: int = 12
    n_head: int = 12
    intermediate_size: int = 3072
    block_size: int = 512  # the longest input, HF max_position_embeddings
    type_vocab_size: int = 2  # segments: sentence A and sentence B
    dropout: float = 0.1  # on embeddings and on each sublayer's output (HF hidden_dropout_prob)
    attention_dropout: float = 0.1  # on the attention weights (HF attention_probs_dropout_prob)
    layer_norm_eps: float = 1e-12
    pad_id: int = 0  # the [PAD] row of the embeddings gets no gradient

    init: str = "normal"  # weight initialisation, a scheme of lmlab.models.init

    def __post_init__(self) -> None:
        at_least("BERT", self, ("vocab_size",), MIN_VOCAB)
        at_least("BERT", self, ("hidden_size", "n_layer", "n_head", "intermediate_size", "block_size",
                                "type_vocab_size"))
        divisible("BERT", self, "hidden_size", "n_head")
        rates("BERT", self, ("dropout", "attention_dropout"))
        positive("BERT", self, ("layer_norm_eps",))
        init_scheme("BERT", self)
        if not 0 <= self.pad_id < self.vocab_size:
            raise ModelConfigError("BERT", "pad_id", f"{self.pad_id} is not an id below vocab_size {self.vocab_size}")


@dataclass
class BertOutput:
    """What `BERT.forward` returns; `loss` only when labels were given."""

    logits: Tensor  # MLM scores (B, T, V)
    hidden_states: Tensor  # the last layer (B, T, H)
    pooled: Tensor  # tanh(dense([CLS])) (B, H)
    nsp_logits: Tensor  # (B, 2): index 0 "B follows A", 1 "B is random", as in BERT
    loss: Tensor | None = None
    cache: None = None  # encoders keep no state between calls; the training loop reads the field


class Embeddings(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_id)
        self.position_embeddings = nn.Embedding(config.block_size, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, input_ids: Tensor | None, token_type_ids: Tensor | None, inputs_embeds: Tensor | None) -> Tensor:
        words = self.word_embeddings(input_ids) if inputs_embeds is None else inputs_embeds  # (B, T, H)
        T = words.size(1)
        places = self.position_embeddings.weight[:T]  # (T, H): positions 0 .. T-1, the same in every row
        if token_type_ids is None:
            segments = self.token_type_embeddings.weight[0]  # (H,): all sentence A
        else:
            segments = self.token_type_embeddings(token_type_ids)  # (B, T, H)
        return self.dropout(self.LayerNorm(words + places + segments))


class SelfAttention(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.n_head = config.n_head
        self.dropout = config.attention_dropout
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        B, T, C = x.size()
        hs = C // self.n_head

        def heads(projection: nn.Linear) -> Tensor:
            return projection(x).view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)

        y = F.scaled_dot_product_attention(
            heads(self.query), heads(self.key), heads(self.value), attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0,
        )  # (B, nh, T, hs)
        return y.transpose(1, 2).reshape(B, T, C)  # re-assemble all head outputs side by side


class AddNorm(nn.Module):
    """A sublayer's output projection, then "Add & Norm": LayerNorm(residual + dropout(dense(y)))."""

    def __init__(self, config: BertConfig, in_features: int):
        super().__init__()
        self.dense = nn.Linear(in_features, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, y: Tensor, residual: Tensor) -> Tensor:
        return self.LayerNorm(residual + self.dropout(self.dense(y)))


class Layer(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        # The nesting spells the checkpoints' names: attention.self.query, attention.output.dense,
        # intermediate.dense, output.dense.
        self.attention = nn.ModuleDict(dict(self=SelfAttention(config), output=AddNorm(config, config.hidden_size)))
        self.intermediate = nn.ModuleDict(dict(dense=nn.Linear(config.hidden_size, config.intermediate_size)))
        self.output = AddNorm(config, config.intermediate_size)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        x = self.attention.output(self.attention.self(x, mask), x)
        # BERT's GELU is the exact one, x * Phi(x) with the erf; the tanh approximation drifts from its outputs.
        return self.output(F.gelu(self.intermediate.dense(x)), x)


class Pooler(nn.Module):
    """The sentence vector for NSP and classification: tanh(dense(hidden state of [CLS]))."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden_states: Tensor) -> Tensor:
        return torch.tanh(self.dense(hidden_states[:, 0]))  # (B, H)


class MaskedLMHead(nn.Module):
    """Scores over the vocabulary at every position: dense, GELU, LayerNorm, then the tied decoder."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.transform = nn.ModuleDict(dict(
            dense=nn.Linear(config.hidden_size, config.hidden_size),
            LayerNorm=nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps),
        ))
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size, bias=False)  # weight tied by BERT
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))  # each word's own prior, not tied

    def forward(self, hidden_states: Tensor) -> Tensor:
        x = self.transform.LayerNorm(F.gelu(self.transform.dense(hidden_states)))
        return self.decoder(x) + self.bias  # (B, T, V)


class BERT(ModelFamily, nn.Module):
    family = "bert"
    config_class = BertConfig
    kind = "encoder"
    default_pooling = "first"  # [CLS], put there for this purpose
    segments = True  # token type embeddings: sentence A and sentence B
    lora_targets = ("query", "value")  # PEFT's default for BERT
    exporter = "lmlab.models.hf_bert:export_bert"

    @classmethod
    def describe(cls, config: dict[str, Any]) -> str:
        return f"BERT {config.get('n_layer')}x{config.get('hidden_size')}"

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.bert = nn.ModuleDict(dict(
            embeddings=Embeddings(config),
            encoder=nn.ModuleDict(dict(layer=nn.ModuleList([Layer(config) for _ in range(config.n_layer)]))),
            pooler=Pooler(config),
        ))
        self.cls = nn.ModuleDict(dict(
            predictions=MaskedLMHead(config),
            seq_relationship=nn.Linear(config.hidden_size, 2),  # NSP: is B the real next sentence?
        ))
        # The residual projections: each sublayer's output dense, added onto the stream before its LayerNorm.
        residual = [module.dense for module in self.modules() if isinstance(module, AddNorm)]
        initialise(self, config.init, n_layer=config.n_layer, residual=residual, output=self.cls.predictions.decoder)
        # Tied: reading a word and predicting it use one matrix, as in BERT (and GPT-2).
        self.cls.predictions.decoder.weight = self.bert.embeddings.word_embeddings.weight

    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size

    def input_embeddings(self) -> nn.Embedding:
        """The word embedding table (also the MLM decoder's weight)."""
        return self.bert.embeddings.word_embeddings

    def features(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
    ) -> Tensor:
        """Hidden states of the last layer (B, T, H). Give `input_ids` (B, T) or `inputs_embeds` (B, T, H)."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("give exactly one of input_ids and inputs_embeds")
        B, T = input_ids.shape if input_ids is not None else inputs_embeds.shape[:2]
        if self.config.block_size < T:
            raise LmlabError(f"{T} tokens exceed the model's {self.config.block_size} positions")
        for name, tensor in (("attention_mask", attention_mask), ("token_type_ids", token_type_ids)):
            if tensor is not None and tensor.shape != (B, T):
                raise ValueError(f"{name} is {tuple(tensor.shape)}, expected {(B, T)}")
        x = self.bert.embeddings(input_ids, token_type_ids, inputs_embeds)  # (B, T, H)
        mask = None if attention_mask is None else self._mask(attention_mask, x.dtype)
        for layer in self.bert.encoder.layer:
            x = layer(x, mask)
        return x

    def attention_maps(self, input_ids: Tensor) -> Tensor:
        """Every head's attention weights over the tokens `input_ids` (T,): (n_layer, n_head, T, T)."""
        layers = [layer.attention.self for layer in self.bert.encoder.layer]
        with torch.no_grad():
            inputs = inputs_of(layers, lambda: self.features(input_ids.view(1, -1)))  # each (1, T, H)
            maps = []
            for attention, x in zip(layers, inputs, strict=True):
                heads = [p(x).view(x.size(1), self.config.n_head, -1).transpose(0, 1)  # (nh, T, hs)
                         for p in (attention.query, attention.key)]
                maps.append(attention_weights(*heads, causal=False))
        return torch.stack(maps)

    @staticmethod
    def _mask(attention_mask: Tensor, dtype: torch.dtype) -> Tensor:
        """Additive (B, 1, 1, T): 0 on real keys, the lowest finite number on padding keys.

        Finite rather than -inf (or a boolean mask) so that a row of padding only, which still gets
        computed, averages over its keys instead of producing NaN.
        """
        padding = attention_mask[:, None, None, :] == 0
        return torch.zeros(padding.shape, dtype=dtype, device=padding.device).masked_fill(
            padding, torch.finfo(dtype).min
        )

    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        labels: Tensor | None = None,
        next_sentence_label: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
    ) -> BertOutput:
        """Both pretraining heads on top of `features`.

        - ``labels`` (B, T): the original token at each masked position, -100 elsewhere; the loss is
          their mean cross-entropy, computed in float32.
        - ``next_sentence_label`` (B,): 0 if sentence B follows A, 1 if it is random; its
          cross-entropy is added to the loss, as in BERT's pretraining.
        """
        hidden_states = self.features(input_ids, attention_mask, token_type_ids, inputs_embeds)
        logits = self.cls.predictions(hidden_states)  # (B, T, V)
        pooled = self.bert.pooler(hidden_states)  # (B, H)
        nsp_logits = self.cls.seq_relationship(pooled)  # (B, 2)

        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=-100)
        if next_sentence_label is not None:
            nsp_loss = F.cross_entropy(nsp_logits.float(), next_sentence_label.flatten())
            loss = nsp_loss if loss is None else loss + nsp_loss
        return BertOutput(logits=logits, hidden_states=hidden_states, pooled=pooled, nsp_logits=nsp_logits, loss=loss)

    def sentence_embedding(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                           normalize: bool = False) -> Tensor:
        """One vector per sentence (B, H): the mean of its real tokens' last hidden states.

        This is sentence-transformers' mean pooling (padding left out of the average). With
        `normalize`, each vector has unit length, so a dot product is the cosine similarity, as
        models trained for it (all-MiniLM-L6-v2) are used.
        """
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden_states = self.features(input_ids, attention_mask)
        weights = attention_mask.unsqueeze(-1).to(hidden_states.dtype)  # (B, T, 1)
        # The clamp keeps an all-padding row at zero instead of 0 / 0.
        mean = (hidden_states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
        return F.normalize(mean, p=2, dim=-1) if normalize else mean
