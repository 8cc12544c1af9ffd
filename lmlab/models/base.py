"""What every model family declares about itself, and what every causal language model shares:
its output, its KV cache, and the protocol generation relies on.

A family's class says what it is (`ModelFamily`), so that training, tuning, evaluation and the
pipelines ask the model instead of checking its name:

    kind               decoder | encoder | encoder-decoder | count-based | word-vectors | task (a tuned head)
    default_pooling    where a task head reads one vector per text (None: no features(), so no
                       fine-tuning task can put a head on it)
    segments           whether features() reads token_type_ids (segment embeddings: which text of a pair)
    lora_targets       the modules LoRA adapts unless told otherwise (PEFT's defaults)
    lora_fan_in_fan_out  True when the Hugging Face twin stores these weights (in, out) (GPT-2's Conv1D)
    exporter           "module:function" that writes the model as a Hugging Face directory
    describe(config)   the model in a few words, for tables: "GPT 4x128"
    uses(config)       what it does and a command to try, for refusals that point the way
    attention_maps(ids)  a Transformer's attention weights over one text (layers, heads, T, T), for reports
    language_model()   the model behind the LanguageModel interface (check_scores_text: whether it has one)

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

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol

import torch
from torch import Tensor, nn

from lmlab.errors import LmlabError
from lmlab.models.language_model import CausalLanguageModel, LanguageModel
from lmlab.tokenizers import Tokenizer

Kind = Literal["decoder", "encoder", "encoder-decoder", "count-based", "word-vectors", "task"]
Pooling = Literal["first", "last", "mean"]

# What a model of each kind is, what it does, and a command that puts one to use ({run}: its directory),
# so that a command refusing a run can say what the run is for instead.
KINDS: dict[str, tuple[str, str, str]] = {
    "decoder": ("a causal language model", "continues text", 'lmlab generate {run} "Once upon a time"'),
    "encoder": ("an encoder", "fills masks and gives features",
                'lmlab pipeline fill-mask --model {run} "The [MASK] is here."   lmlab tune base={run} data=...'),
    "encoder-decoder": ("an encoder-decoder", "maps text to text", "lmlab pipeline --help"),
    "count-based": ("a count-based language model", "scores and continues text",
                    'lmlab generate {run} "Once upon a time"'),
    "word-vectors": ("a table of word vectors", "maps words to vectors", "lmlab vectors similar {run} WORD"),
    "task": ("a fine-tuned model", "labels text", 'lmlab pipeline sentiment-analysis --model {run} "TEXT"'),
}


class ModelFamily:
    """The capabilities a model family declares; every family's model class derives from it.

    The defaults describe a family that can do nothing beyond its own kind: no task heads, no LoRA
    default, no export. A family overrides what it can do, in its own file, and nowhere else is its
    name checked.
    """

    family: ClassVar[str]
    config_class: ClassVar[type]
    kind: ClassVar[Kind]
    default_pooling: ClassVar[Pooling | None] = None
    segments: ClassVar[bool] = False
    lora_targets: ClassVar[tuple[str, ...]] = ()
    lora_fan_in_fan_out: ClassVar[bool] = False
    exporter: ClassVar[str | None] = None
    config: Any  # the instance's config, set by the family's __init__
    missing_weights: tuple[str, ...] = ()  # read from a directory that lacked them: left at initialisation
    carries_state: ClassVar[bool] = False  # its cache can be carried from one training window into the next
    unbounded_context: ClassVar[bool] = False  # reads any length: block_size is only its training window
    # forward takes document_ids (texts sharing a row, unseen by each other) and branch_ids (one prompt, its answers)
    packs_documents: ClassVar[bool] = False

    @classmethod
    def describe(cls, config: dict[str, Any]) -> str:
        """The model in a few words, for tables and reports."""
        return cls.family

    def config_dict(self) -> dict[str, Any]:
        """The model's config as plain data, as model.json stores it."""
        return self.config.model_dump() if hasattr(self.config, "model_dump") else dataclasses.asdict(self.config)

    @classmethod
    def uses(cls, config: dict[str, Any]) -> tuple[str, str]:
        """What a model of this family does, and a command to try it (``{run}`` stands for its directory)."""
        _, does, command = KINDS[cls.kind]
        return does, command

    def grow_vocabulary(self, vocab_size: int) -> None:
        """Room for `vocab_size` ids, the new ones after the old (tokens added to a trained tokenizer,
        such as a chat format's turn markers), in place; the old ids keep their exact rows.

        A new row starts as the mean of the trained ones (Hewitt, 2021): a random row of the
        initialisation's scale would give the new token a logit far from the rest, and training would
        first spend steps undoing it. Works for decoders whose output layer is ``lm_head``, tied to the
        input embeddings or not.
        """
        embedding, output = self.input_embeddings(), self.lm_head  # type: ignore[attr-defined]
        old = embedding.weight.size(0)
        if vocab_size <= old:
            return
        tied = output.weight is embedding.weight
        with torch.no_grad():
            def grown(weight: Tensor) -> nn.Parameter:
                extra = weight.mean(dim=0, keepdim=True).expand(vocab_size - old, -1)
                return nn.Parameter(torch.cat([weight, extra]))

            embedding.weight = grown(embedding.weight)
            output.weight = embedding.weight if tied else grown(output.weight)
        embedding.num_embeddings = output.out_features = vocab_size
        self.config.vocab_size = vocab_size

    def attention_maps(self, input_ids: Tensor) -> Tensor | None:
        """Attention weights over one text's tokens `input_ids` (T,): (layers, heads, T, T), each row a
        distribution over the keys; None where the family has no attention."""
        return None

    @classmethod
    def check_scores_text(cls) -> None:
        """Refuse, saying why, where the family gives no probabilities of text (so no `LanguageModel`)."""
        if cls.kind != "decoder":
            raise LmlabError(f"a {cls.family} model ({cls.kind}) gives no next-token probabilities, so it cannot "
                             "score or generate text")

    def language_model(self, tokenizer: Tokenizer, max_length: int | None = None,
                       predict_end: bool = False) -> LanguageModel:
        """This model behind the `LanguageModel` interface, if it gives next-token probabilities."""
        self.check_scores_text()
        return CausalLanguageModel(self, tokenizer, max_length=max_length, predict_end=predict_end)  # type: ignore[arg-type]


def attention_weights(queries: Tensor, keys: Tensor, causal: bool) -> Tensor:
    """softmax(q k^T / sqrt(d)) over (..., T, hs) queries and keys: (..., T, T); a decoder's future masked out.

    What scaled_dot_product_attention computes inside and does not return: families call it in
    `attention_maps` only, so their ordinary forward keeps its fused kernel.
    """
    scores = queries.float() @ keys.float().transpose(-2, -1) / math.sqrt(queries.size(-1))
    if causal:
        T = scores.size(-1)
        scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool, device=scores.device).triu(1), float("-inf"))
    return scores.softmax(dim=-1)


def causal_mask(attention_mask: Tensor | None, past: int, T: int, device: torch.device) -> Tensor:
    """Boolean (B or 1, 1, T, past + T): may query t (at position past + t) attend to key s?

    The past and itself, and with `attention_mask` (B, past + T; 0 = left padding) no padding key.
    """
    query_pos = torch.arange(past, past + T, device=device).unsqueeze(1)  # (T, 1)
    key_pos = torch.arange(past + T, device=device).unsqueeze(0)  # (1, past + T)
    allowed = key_pos <= query_pos
    if attention_mask is not None:
        real = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, past + T)
        # A padding query may still see itself: a row with nothing allowed would give NaN,
        # which would spread through its keys and values into every later layer.
        allowed = (allowed & real) | (key_pos == query_pos)
    return allowed if allowed.dim() == 4 else allowed[None, None]


def document_positions(document_ids: Tensor) -> Tensor:
    """Each token's position within its own document, for rows (B, T) of document ids packed side by side.

    A document starts where the id changes, so ``[[7, 7, 7, 4, 4]]`` gives ``[[0, 1, 2, 0, 1]]``: a text
    packed after others is placed exactly as if it were alone in its row.
    """
    B, T = document_ids.shape
    index = torch.arange(T, device=document_ids.device).expand(B, T)
    starts = torch.ones_like(document_ids, dtype=torch.bool)
    starts[:, 1:] = document_ids[:, 1:] != document_ids[:, :-1]
    first_of_document = torch.where(starts, index, torch.zeros_like(index)).cummax(dim=1).values
    return index - first_of_document


def document_mask(document_ids: Tensor) -> Tensor:
    """Boolean (B, 1, T, T): may query t attend to key s? Only to earlier tokens of its own document."""
    T = document_ids.size(1)
    same_document = document_ids[:, :, None] == document_ids[:, None, :]
    causal = torch.ones(T, T, dtype=torch.bool, device=document_ids.device).tril()
    return (same_document & causal)[:, None]


def branch_mask(branch_ids: Tensor) -> Tensor:
    """Boolean (B, 1, T, T) for rows that pack one prompt with several answers to it: ``branch_ids`` (B, T) is
    0 on the prompt, 1, 2, ... on each answer and -1 on padding. A token sees the earlier prompt tokens and
    the earlier tokens of its own answer, so each answer is read as if it alone followed the prompt (the
    prompt is computed once, not once per answer)."""
    T = branch_ids.size(1)
    visible = (branch_ids[:, :, None] == branch_ids[:, None, :]) | (branch_ids[:, None, :] == 0)
    causal = torch.ones(T, T, dtype=torch.bool, device=branch_ids.device).tril()
    return (visible & causal)[:, None]


def positions_in(mask: Tensor) -> Tensor:
    """Each query's position (B, T) under a boolean mask (B, 1, T, T) that lets it see the tokens before it in
    its own text and itself: how many it sees, less one."""
    return mask.sum(dim=-1).squeeze(1) - 1


def inputs_of(modules: Sequence[nn.Module], run: Callable[[], object]) -> list[Tensor]:
    """The first input each of `modules` receives while `run()` runs (hooks added for that call only)."""
    seen: list[Tensor] = []
    hooks = [module.register_forward_pre_hook(lambda _, args: seen.append(args[0])) for module in modules]
    try:
        run()
    finally:
        for hook in hooks:
            hook.remove()
    return seen


@dataclass
class LMOutput:
    """What a causal LM returns: logits (B, T, V), the mean loss when labels were given, the cache."""

    logits: Tensor
    loss: Tensor | None = None
    cache: Any = None  # a KVCache for Transformers; a recurrent state or token window for other families


def check_logits_request(labels: Tensor | None, last_token_only: bool, logits_at: Tensor | None) -> None:
    """A decoder's forward gives every position's logits (B, T, V), the last one's (B, 1, V) when decoding, or
    with ``logits_at`` (B, T) bool only those positions', as (N, V) in row-major order: a loss that reads a
    few positions (a preference's answer tokens) skips the V x d output matmul for the rest. A loss over
    ``labels`` needs every position, so it goes with neither."""
    if labels is not None and (last_token_only or logits_at is not None):
        raise ValueError("labels need the logits of every position; do not pass last_token_only or logits_at")
    if last_token_only and logits_at is not None:
        raise ValueError("pass last_token_only or logits_at, not both")


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

    def first_rows(self, count: int) -> KVCache:
        """An empty cache over the first `count` rows of this one's tensors: a view, sharing their memory, so
        a server can keep one allocation for batches of every size."""
        view = KVCache.__new__(KVCache)
        view.max_len, view.length = self.max_len, 0
        view.keys = [keys[:count] for keys in self.keys]
        view.values = [values[:count] for values in self.values]
        return view

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
