"""Fill in the blanks: the objectives of a bidirectional encoder, as BERT is pretrained.

A bidirectional encoder sees the next token, so it cannot be asked for it; it is asked for hidden ones:

- `MaskedLM` (``masked_lm``): a window framed ``[CLS] ... [SEP]``, some of its tokens hidden, and
  the loss taken on the hidden ones only.
- `MaskedLMWithNSP` (``masked_lm_nsp``): the same on a pair ``[CLS] A [SEP] B [SEP]``, plus "next
  sentence prediction": did B follow A in the text, or was it drawn from elsewhere?
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from lmlab.data.packing import TokenShards
from lmlab.errors import LmlabError
from lmlab.modes import evaluating
from lmlab.tokenizers import Tokenizer
from lmlab.train.objectives.base import Batch, Objective, ObjectiveSettings, batch_generator, on_device

MASK_PROB = 0.15  # the share of a window's ordinary tokens the model is quizzed on
# Of the quizzed tokens, 80% are shown as [MASK], 10% as a random token and 10% as themselves: fine-tuning
# never shows [MASK], so the model must also predict from tokens that look real, and cannot trust them blindly.
MASK_SHARE, RANDOM_SHARE = 0.8, 0.1
VALIDATION_SEED = 0  # validation is masked alike at every evaluation and in every run, so the curves compare
PREPARE_HINT = ("prepare the data with a WordPiece tokenizer: "
                "lmlab data prepare CORPUS --out DIR tokenizer.kind=wordpiece")


@dataclass(frozen=True)
class BertVocabulary:
    """The ids BERT's pretraining frames and masks with, read from the ``tokenizer.json`` beside the shards."""

    cls_id: int
    sep_id: int
    mask_id: int
    pad_id: int
    special: torch.Tensor  # (V,) bool: [CLS], [SEP], [PAD], [UNK], [MASK]... never quizzed, never drawn at random
    ordinary: torch.Tensor  # the other ids, from which the random replacements are drawn

    @classmethod
    def of_packed(cls, shards: TokenShards, objective: str) -> BertVocabulary:
        path = shards.directory / "tokenizer.json"
        if not path.exists():
            raise LmlabError(f"{path}: missing; objective {objective} needs the ids of [CLS], [SEP], [MASK] and "
                             f"[PAD] from the tokenizer the data was packed with ({PREPARE_HINT})")
        tokenizer = Tokenizer.load(path)
        if tokenizer.vocab_size != shards.meta.vocab_size:
            raise LmlabError(f"{path}: {tokenizer.vocab_size} ids, but {shards.directory / 'meta.json'} says "
                             f"vocab_size {shards.meta.vocab_size}; it is not the tokenizer the data was packed with")
        ids = {name: tokenizer.token_to_id(name) for name in ("[CLS]", "[SEP]", "[MASK]", "[PAD]")}
        missing = [name for name, token_id in ids.items() if token_id is None]
        if missing:
            raise LmlabError(f"{path}: a {type(tokenizer.backend.model).__name__} tokenizer without "
                             f"{', '.join(missing)}; objective {objective} needs BERT's special tokens, so "
                             f"{PREPARE_HINT}")
        special = torch.zeros(tokenizer.vocab_size, dtype=torch.bool)
        special[[token_id for token_id, added in tokenizer.backend.get_added_tokens_decoder().items()
                 if added.special]] = True
        special[list(ids.values())] = True
        if shards.meta.eos_id is not None:
            special[shards.meta.eos_id] = True  # the document end packing appended
        if bool(special.all()):
            raise LmlabError(f"{path}: every id is a special token, so there is nothing to mask")
        return cls(ids["[CLS]"], ids["[SEP]"], ids["[MASK]"], ids["[PAD]"], special,
                   torch.nonzero(~special).flatten())


def check_encoder(model: nn.Module, objective: str) -> None:
    if getattr(model, "kind", None) != "encoder":
        raise LmlabError(f"objective: {objective} trains a bidirectional encoder, and a {model.family} model is not "
                         "one; use it with an encoder such as bert, or use causal_lm")


def mask_tokens(input_ids: torch.Tensor, vocab: BertVocabulary,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking of a batch (B, T): (inputs with the quizzed tokens disguised, labels).

    Each ordinary position is quizzed with probability MASK_PROB (a fresh draw for every batch, so a
    window seen twice is quizzed differently: "dynamic masking", as RoBERTa does it); special tokens
    and padding never are. A row that drew no position at all gets its likeliest one, so that every
    row carries some loss. Labels hold the original token where quizzed and -100 (ignored) elsewhere.
    """
    B, T = input_ids.shape
    ordinary = ~vocab.special[input_ids]  # (B, T)
    scores = torch.rand(B, T, generator=generator).masked_fill(~ordinary, 2.0)  # specials never below MASK_PROB
    quizzed = scores < MASK_PROB
    empty = ~quizzed.any(dim=1) & ordinary.any(dim=1)
    quizzed[empty, scores[empty].argmin(dim=1)] = True
    disguise = torch.rand(B, T, generator=generator)  # < 0.8: [MASK]; < 0.9: random; else unchanged
    random_ids = vocab.ordinary[torch.randint(len(vocab.ordinary), (B, T), generator=generator)]
    inputs = torch.where(quizzed & (disguise < MASK_SHARE), vocab.mask_id, input_ids)
    inputs = torch.where(quizzed & (disguise >= MASK_SHARE) & (disguise < MASK_SHARE + RANDOM_SHARE),
                         random_ids, inputs)
    return inputs, input_ids.masked_fill(~quizzed, -100)


class MaskedLM(Objective):
    """Masked-LM pretraining on random windows of WordPiece-packed shards (BERT without NSP, as RoBERTa).

        stream   ... 17 42 [SEP] 91 7 33 [SEP] 58 ...             (packing ends each document with [SEP])
        window   [CLS] 42 [SEP] 91 7 33 [SEP] [SEP]               block_size tokens: T - 2 of text, framed
        input    [CLS] 42 [SEP] [MASK] 7 12 [SEP] [SEP]            91 masked, 33 replaced by a random 12
        labels   -100 -100 -100 91 -100 33 -100 -100

    A window may span a document end, whose [SEP] then stays inside it: the model learns that text
    can change subject there. Validation reads the split in consecutive windows, masked by a
    generator seeded alike at every evaluation, so the validation loss measures the model, not the
    luck of the draw.
    """

    def __init__(self, shards: TokenShards, vocab: BertVocabulary, batch_size: int, block_size: int, seed: int,
                 eval_tokens: int | None = None):
        if block_size < 3:
            raise LmlabError(f"train.block_size: {block_size} leaves no room for text between [CLS] and [SEP]")
        self.shards, self.vocab, self.batch_size, self.seed = shards, vocab, batch_size, seed
        self.eval_tokens = eval_tokens
        self.text_length = block_size - 2
        tokens = shards.num_tokens("train")
        if tokens < self.text_length:
            raise LmlabError(f"{shards.directory / 'train.bin'}: {tokens} tokens, fewer than train.block_size - 2 = "
                             f"{self.text_length}; lower block_size or pack more text")

    @classmethod
    def build(cls, model: nn.Module, shards: TokenShards, settings: ObjectiveSettings) -> MaskedLM:
        check_encoder(model, "masked_lm")
        vocab = BertVocabulary.of_packed(shards, "masked_lm")
        return cls(shards, vocab, settings.batch_size, settings.block_size, settings.seed, settings.eval_tokens)

    def frame(self, text: torch.Tensor) -> torch.Tensor:
        """(B, L) -> (B, L + 2): ``[CLS] text [SEP]``."""
        column = torch.ones(text.size(0), 1, dtype=text.dtype)
        return torch.cat([column * self.vocab.cls_id, text, column * self.vocab.sep_id], dim=1)

    def training_batch(self, step: int, micro_step: int) -> Batch:
        generator = batch_generator(self.seed, step, micro_step)
        tokens, L = self.shards.tokens("train"), self.text_length
        starts = torch.randint(len(tokens) - L + 1, (self.batch_size,), generator=generator)
        rows = starts.numpy()[:, None] + np.arange(L)  # (B, L) indices into the split
        text = torch.from_numpy(tokens[rows].astype(np.int64))
        input_ids, labels = mask_tokens(self.frame(text), self.vocab, generator)
        return {"input_ids": input_ids, "labels": labels}

    def evaluation_note(self) -> str:
        return (f"per masked token: {self.eval_targets:,} tokens (about {MASK_PROB:.0%} of those read) of the packed "
                f"val split, masked alike at every evaluation, in consecutive windows of {self.text_length} tokens "
                "framed [CLS] ... [SEP]; a pseudo-perplexity, not comparable with a causal model's")

    def eval_batches(self, max_tokens: int | None) -> Iterator[Batch]:
        """Consecutive windows of the validation split (`max_tokens` tokens' worth spread over it), masked
        the same way every time; about MASK_PROB of those tokens are the targets."""
        generator = torch.Generator().manual_seed(VALIDATION_SEED)
        for text, _ in self.shards.iter_windows("val", self.text_length, self.batch_size, max_tokens):
            input_ids, labels = mask_tokens(self.frame(text), self.vocab, generator)
            yield {"input_ids": input_ids, "labels": labels}


class Documents:
    """Where each document's text lies in a packed split: between the document ends packing appended.

    Only documents of two tokens or more are kept, since a pair needs a token on each side of its cut.
    Finding the ends reads the split once, a chunk at a time, when training starts.
    """

    CHUNK = 1 << 24

    def __init__(self, tokens: np.ndarray, eos_id: int):
        ends = [np.flatnonzero(tokens[i:i + self.CHUNK] == eos_id) + i for i in range(0, len(tokens), self.CHUNK)]
        ends = np.concatenate([*ends, np.zeros(0, dtype=np.int64)])
        if len(tokens) and tokens[-1] != eos_id:
            ends = np.append(ends, len(tokens))  # the last document, left open
        starts = np.concatenate([[0], ends[:-1] + 1])[: len(ends)]
        keep = ends - starts >= 2
        self.starts, self.lengths = starts[keep], (ends - starts)[keep]
        self.cumulative = np.cumsum(self.lengths)  # document d holds tokens cumulative[d-1] .. cumulative[d]-1
        self.total = int(self.cumulative[-1]) if len(self.cumulative) else 0

    def __len__(self) -> int:
        return len(self.starts)

    def pick(self, u: float, excluding: int | None = None) -> int:
        """The document holding text position floor(u * total), u in [0, 1): each token is equally likely,
        so long documents are read as often as their length deserves. With `excluding`, that document's
        tokens are skipped over."""
        skipped = 0 if excluding is None else int(self.lengths[excluding])
        position = int(u * (self.total - skipped))
        if excluding is not None and position >= self.cumulative[excluding] - skipped:
            position += skipped
        return int(np.searchsorted(self.cumulative, position, side="right"))


class MaskedLMWithNSP(Objective):
    """Masked-LM plus next-sentence prediction (BERT's original pretraining) on WordPiece-packed shards.

        [CLS] A A A A [SEP] B B B [SEP] [PAD] [PAD]      input_ids, then masked as in `MaskedLM`
          0   0 0 0 0   0   1 1 1   1     0     0        token_type_ids: segment A or B
          1   1 1 1 1   1   1 1 1   1     0     0        attention_mask
        next_sentence_label 0 (IsNext: B is the text right after A) or 1 (NotNext), half and half

    A pair is read from one document: a random token picks the document (long ones more often), a
    span of up to block_size - 3 tokens of it is cut at a random point into A and B. For NotNext, B is
    replaced by as many tokens from another document (fewer if that one is shorter). Segments never
    cross a document end, so a short document gives a short pair, padded on the right.

    The loss is the masked-LM loss plus the NSP loss, as BERT's. Validation draws a fixed set of
    pairs from the validation split and reports both parts and the NSP accuracy.
    """

    def __init__(self, shards: TokenShards, vocab: BertVocabulary, batch_size: int, block_size: int, seed: int,
                 eval_tokens: int | None):
        if block_size < 5:
            raise LmlabError(f"train.block_size: {block_size} leaves no room for [CLS] A [SEP] B [SEP]")
        if shards.meta.eos_id is None:
            raise LmlabError(f"{shards.directory / 'meta.json'}: eos_id is null, so documents are not delimited and "
                             f"next-sentence pairs cannot be cut from them; {PREPARE_HINT}")
        self.shards, self.vocab, self.batch_size, self.block_size, self.seed = (
            shards, vocab, batch_size, block_size, seed)
        self.eval_tokens = eval_tokens
        self.documents: dict[str, Documents] = {}
        for split in ("train", "val"):
            documents = self.documents[split] = Documents(shards.tokens(split), shards.meta.eos_id)
            if len(documents) < 2:
                raise LmlabError(f"{shards.directory / f'{split}.bin'}: only {len(documents)} document(s) of two "
                                 "tokens or more; next-sentence prediction needs at least two to draw pairs from")

    @classmethod
    def build(cls, model: nn.Module, shards: TokenShards, settings: ObjectiveSettings) -> MaskedLMWithNSP:
        check_encoder(model, "masked_lm_nsp")
        vocab = BertVocabulary.of_packed(shards, "masked_lm_nsp")
        return cls(shards, vocab, settings.batch_size, settings.block_size, settings.seed, settings.eval_tokens)

    def pairs(self, split: str, rows: int, generator: torch.Generator) -> Batch:
        """`rows` pairs from `split`, framed, padded and labelled, before masking."""
        tokens, documents = self.shards.tokens(split), self.documents[split]
        draws = torch.rand(rows, 6, generator=generator, dtype=torch.float64).numpy()  # 53 bits: any corpus size
        input_ids = np.full((rows, self.block_size), self.vocab.pad_id, dtype=np.int64)
        token_type_ids = np.zeros_like(input_ids)
        attention_mask = np.zeros_like(input_ids)
        not_next = draws[:, 2] < 0.5
        for row, (u_document, u_start, _, u_cut, u_other, u_other_start) in enumerate(draws):
            d = documents.pick(u_document)
            span = min(self.block_size - 3, int(documents.lengths[d]))
            start = int(documents.starts[d]) + int(u_start * (documents.lengths[d] - span + 1))
            cut = 1 + int(u_cut * (span - 1))  # A gets 1 .. span - 1 tokens, B the rest
            a = tokens[start:start + cut]
            if not_next[row]:
                other = documents.pick(u_other, excluding=d)
                length = min(span - cut, int(documents.lengths[other]))
                offset = int(documents.starts[other]) + int(u_other_start * (documents.lengths[other] - length + 1))
                b = tokens[offset:offset + length]
            else:
                b = tokens[start + cut:start + span]
            pair = [self.vocab.cls_id, *a, self.vocab.sep_id, *b, self.vocab.sep_id]
            input_ids[row, :len(pair)] = pair
            token_type_ids[row, len(a) + 2:len(pair)] = 1
            attention_mask[row, :len(pair)] = 1
        return {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(attention_mask),
                "token_type_ids": torch.from_numpy(token_type_ids),
                "next_sentence_label": torch.from_numpy(not_next.astype(np.int64))}

    def _masked(self, batch: Batch, generator: torch.Generator) -> Batch:
        batch["input_ids"], batch["labels"] = mask_tokens(batch["input_ids"], self.vocab, generator)
        return batch

    def training_batch(self, step: int, micro_step: int) -> Batch:
        generator = batch_generator(self.seed, step, micro_step)
        return self._masked(self.pairs("train", self.batch_size, generator), generator)

    def eval_batches(self, max_tokens: int | None) -> Iterator[Batch]:
        """A fixed set of validation pairs, masked alike every time: as many as fill `max_tokens`
        positions, or about one pass over the split's text."""
        generator = torch.Generator().manual_seed(VALIDATION_SEED)
        tokens = self.documents["val"].total if max_tokens is None else max_tokens
        pairs = max(1, tokens // self.block_size)
        for first in range(0, pairs, self.batch_size):
            yield self._masked(self.pairs("val", min(self.batch_size, pairs - first), generator), generator)

    def evaluate(self, model: torch.nn.Module, device: torch.device) -> dict[str, float]:
        """val_loss (masked-LM + NSP, as trained), each part, and how often NSP guesses right."""
        mlm_sum = nsp_sum = 0.0
        targets = pairs = correct = 0
        with evaluating(model):
            for batch in self.eval_batches(self.eval_tokens):
                batch = on_device(batch, device)
                out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                            token_type_ids=batch["token_type_ids"])
                labels, nsp_labels = batch["labels"], batch["next_sentence_label"]
                mlm_sum += float(torch.nn.functional.cross_entropy(
                    out.logits.float().flatten(0, 1), labels.flatten(), ignore_index=-100, reduction="sum"))
                nsp_sum += float(torch.nn.functional.cross_entropy(out.nsp_logits.float(), nsp_labels,
                                                                   reduction="sum"))
                targets += int((labels != -100).sum())
                pairs += len(nsp_labels)
                correct += int((out.nsp_logits.argmax(dim=-1) == nsp_labels).sum())
        mlm, nsp = mlm_sum / targets, nsp_sum / pairs
        return {"val_loss": mlm + nsp, "val_mlm_loss": mlm, "val_nsp_loss": nsp, "val_nsp_accuracy": correct / pairs}
