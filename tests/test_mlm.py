"""BERT pretraining objectives: masked-LM (dynamic 80/10/10 masking) and next-sentence prediction."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import tiny_documents

from lmlab.config import load_config
from lmlab.data.packing import TokenShards, pack_corpus
from lmlab.errors import LmlabError
from lmlab.models import load_model
from lmlab.tokenizers import TokenizerConfig, train_tokenizer
from lmlab.train import TrainConfig, train
from lmlab.train.objectives import (
    BertVocabulary,
    MaskedLM,
    MaskedLMWithNSP,
    Objective,
    batch_generator,
    mask_tokens,
)

TINY_BERT = ("model={family: bert, n_layer: 2, n_head: 2, hidden_size: 32, intermediate_size: 64, block_size: 32}")


@pytest.fixture(scope="module")
def wordpiece_dir(tmp_path_factory):
    """The conftest corpus packed with WordPiece, tokenizer.json beside the shards (as `data prepare` leaves it)."""
    docs = tiny_documents()
    tokenizer = train_tokenizer(docs, TokenizerConfig(kind="wordpiece", vocab_size=300))
    out = tmp_path_factory.mktemp("wordpiece") / "data"
    pack_corpus(docs, tokenizer, out, val_fraction=0.2, seed=0)
    tokenizer.save(out / "tokenizer.json")
    return out


@pytest.fixture(scope="module")
def shards(wordpiece_dir):
    return TokenShards(wordpiece_dir)


@pytest.fixture(scope="module")
def vocab(shards):
    return BertVocabulary.of_packed(shards, "masked_lm")


def _originals(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The ids before masking: the labels where a token was quizzed, the input elsewhere."""
    return torch.where(batch["labels"] != -100, batch["labels"], batch["input_ids"])


def test_masking_quizzes_15_percent_of_ordinary_tokens_80_10_10(vocab):
    generator = torch.Generator().manual_seed(0)
    B, T = 400, 64
    original = vocab.ordinary[torch.randint(len(vocab.ordinary), (B, T), generator=generator)]
    specials = torch.nonzero(vocab.special).flatten()
    sprinkled = torch.rand(B, T, generator=generator) < 0.1
    original[sprinkled] = specials[torch.randint(len(specials), (int(sprinkled.sum()),), generator=generator)]
    original[:, 0], original[:, -1] = vocab.cls_id, vocab.sep_id

    inputs, labels = mask_tokens(original, vocab, batch_generator(1337, 3, 0))
    quizzed = labels != -100
    is_special = vocab.special[original]
    assert not quizzed[is_special].any()  # never a special token, nor padding
    assert torch.equal(labels[quizzed], original[quizzed])
    assert torch.equal(inputs[~quizzed], original[~quizzed])
    assert float(quizzed.sum()) / float((~is_special).sum()) == pytest.approx(0.15, abs=0.01)

    shown = inputs[quizzed]
    masked = shown == vocab.mask_id
    kept = shown == original[quizzed]
    replaced = ~masked & ~kept
    n = len(shown)
    assert float(masked.sum()) / n == pytest.approx(0.8, abs=0.03)
    assert float(kept.sum()) / n == pytest.approx(0.1, abs=0.025)
    assert float(replaced.sum()) / n == pytest.approx(0.1, abs=0.025)
    assert not vocab.special[shown[replaced]].any()  # random replacements are ordinary tokens


def test_masking_is_a_function_of_seed_step_micro_and_changes_every_draw(vocab):
    window = vocab.ordinary[torch.arange(8 * 30) % len(vocab.ordinary)].view(8, 30)
    once = mask_tokens(window, vocab, batch_generator(7, 4, 1))
    again = mask_tokens(window, vocab, batch_generator(7, 4, 1))
    assert all(torch.equal(a, b) for a, b in zip(once, again, strict=True))
    for other in (batch_generator(7, 5, 1), batch_generator(7, 4, 0), batch_generator(8, 4, 1)):
        assert not torch.equal(mask_tokens(window, vocab, other)[1], once[1])  # the same text, quizzed anew


def test_every_row_is_quizzed_even_when_short(vocab):
    short = torch.tensor([[vocab.cls_id, int(vocab.ordinary[3]), vocab.sep_id]] * 50)
    _, labels = mask_tokens(short, vocab, torch.Generator().manual_seed(0))
    assert torch.equal(labels[:, 1], short[:, 1]) and (labels[:, [0, 2]] == -100).all()


def test_masked_lm_windows_are_framed_deterministic_and_validation_is_fixed(shards, vocab):
    objective: Objective = MaskedLM(shards, vocab, batch_size=6, block_size=20, seed=3)
    batch = objective.training_batch(4, 1)
    assert batch["input_ids"].shape == (6, 20)
    assert (batch["input_ids"][:, 0] == vocab.cls_id).all() and (batch["input_ids"][:, -1] == vocab.sep_id).all()
    stream = shards.tokens("train").astype(np.int64)
    for row in _originals(batch)[:, 1:-1].numpy():  # the text between the frame is a window of the split
        assert any(np.array_equal(stream[i:i + 18], row) for i in np.flatnonzero(stream == row[0]))
    rebuilt = MaskedLM(shards, vocab, batch_size=6, block_size=20, seed=3)
    assert all(torch.equal(batch[k], rebuilt.training_batch(4, 1)[k]) for k in batch)
    assert not torch.equal(batch["input_ids"], objective.training_batch(5, 1)["input_ids"])

    first, second = list(objective.eval_batches(None)), list(objective.eval_batches(None))
    other_seed = list(MaskedLM(shards, vocab, batch_size=6, block_size=20, seed=99).eval_batches(None))
    for a, b, c in zip(first, second, other_seed, strict=True):
        assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["labels"], b["labels"])
        assert torch.equal(a["labels"], c["labels"])  # every run is scored on the same quiz
    text = torch.cat([_originals(b)[:, 1:-1].flatten() for b in first]).numpy()
    val = shards.tokens("val").astype(np.int64)
    assert np.array_equal(text, val[: len(text)]) and len(text) == len(val) - 1  # the whole split, in order
    assert sum(int((b["labels"] != -100).sum()) for b in first) > 0.1 * len(text)


def _segments(row_ids: np.ndarray, types: np.ndarray, attention: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    real = row_ids[attention == 1]
    a_end = int((types[attention == 1] == 0).sum())  # [CLS] A [SEP]
    return real[1:a_end - 1], real[a_end:-1]


def test_nsp_pairs_are_balanced_and_isnext_is_the_real_continuation(shards, vocab):
    objective = MaskedLMWithNSP(shards, vocab, batch_size=400, block_size=24, seed=5, eval_tokens=None)
    batch = objective.training_batch(2, 0)
    assert not any(torch.equal(batch[k], objective.training_batch(3, 0)[k]) for k in ("input_ids", "labels"))
    labels = batch["next_sentence_label"].numpy()
    assert set(labels) == {0, 1} and abs(labels.mean() - 0.5) < 0.07
    originals = _originals(batch).numpy()
    stream = shards.tokens("train").astype(np.int64)
    eos = shards.meta.eos_id

    def in_stream(piece: np.ndarray) -> bool:
        return any(np.array_equal(stream[i:i + len(piece)], piece) for i in np.flatnonzero(stream == piece[0]))

    continued = []
    for row in range(len(labels)):
        ids, types = originals[row], batch["token_type_ids"][row].numpy()
        attention = batch["attention_mask"][row].numpy()
        n = int(attention.sum())
        assert ids[0] == vocab.cls_id and ids[n - 1] == vocab.sep_id and (ids[n:] == vocab.pad_id).all()
        assert (attention[:n] == 1).all() and (types[n:] == 0).all() and (batch["labels"][row, n:] == -100).all()
        a, b = _segments(ids, types, attention)
        assert len(a) >= 1 and len(b) >= 1 and eos not in a and eos not in b  # never across a document end
        assert (types[:len(a) + 2] == 0).all() and (types[len(a) + 2:n] == 1).all()
        continued.append(in_stream(np.concatenate([a, b])))
    continued = np.array(continued)
    assert continued[labels == 0].all()
    assert continued[labels == 1].mean() < 0.05  # NotNext: B is read elsewhere, so rarely happens to follow A
    assert not (batch["labels"].numpy()[vocab.special[torch.from_numpy(originals)].numpy()] != -100).any()

    first, second = list(objective.eval_batches(400)), list(objective.eval_batches(400))
    assert len(first) == 1 and len(first[0]["input_ids"]) == 400 // 24
    assert all(torch.equal(x[k], y[k]) for x, y in zip(first, second, strict=True) for k in x)


def _config(data, run_dir, objective: str, steps: int, *extra: str) -> TrainConfig:
    return load_config(TrainConfig, None, [
        f"data={data}", f"run_dir={run_dir}", f"objective={objective}", TINY_BERT,
        f"train.max_steps={steps}", "train.batch_size=8", "train.eval_every=10", "train.eval_tokens=2048",
        "train.log_every=1", "train.checkpoint_every=1", "train.device=cpu", "optimizer.lr=0.003",
        "schedule.warmup_steps=3", *extra,
    ])


def test_tiny_bert_learns_masked_lm(wordpiece_dir, tmp_path):
    run = tmp_path / "mlm"
    result = train(_config(wordpiece_dir, run, "masked_lm", 30, "train.batch_size=16", "train.eval_every=5",
                           "optimizer.lr=0.005"))
    val = [r["val_loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "val_loss" in r]
    # Falling on the same fixed quiz, and well below a uniform guess over the vocabulary.
    uniform = math.log(TokenShards(wordpiece_dir).meta.vocab_size)
    assert len(val) == 6 and val[-1] < val[0] - 0.3 and val[-1] < uniform - 0.5, val
    assert result.val_loss == val[-1] and load_model(run).family == "bert"


@pytest.mark.parametrize("objective", ["masked_lm", "masked_lm_nsp"])
def test_resume_after_a_crash_equals_uninterrupted(wordpiece_dir, tmp_path, monkeypatch, objective):
    straight = tmp_path / "straight"
    train(_config(wordpiece_dir, straight, objective, 12))
    crashed = tmp_path / "crashed"
    objective_class = MaskedLM if objective == "masked_lm" else MaskedLMWithNSP
    real_batch = objective_class.training_batch

    def crash_at_step_7(self, step, micro_step):
        if step == 7:
            raise RuntimeError("power cut")
        return real_batch(self, step, micro_step)

    with monkeypatch.context() as patch:
        patch.setattr(objective_class, "training_batch", crash_at_step_7)
        with pytest.raises(RuntimeError, match="power cut"):
            train(_config(wordpiece_dir, crashed, objective, 12))
    train(_config(wordpiece_dir, crashed, objective, 12), resume=True)
    resumed, reference = load_model(crashed).state_dict(), load_model(straight).state_dict()
    for name in reference:
        assert torch.equal(resumed[name], reference[name]), name
    records = [json.loads(line) for line in (crashed / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == list(range(1, 13))
    if objective == "masked_lm_nsp":
        last = records[-1]
        assert last["val_loss"] == pytest.approx(last["val_mlm_loss"] + last["val_nsp_loss"])
        assert 0 <= last["val_nsp_accuracy"] <= 1


def test_masked_objectives_need_wordpiece_data_and_an_encoder(packed_dir, wordpiece_dir, tmp_path):
    with pytest.raises(LmlabError, match=r"tokenizer.json: a .* tokenizer without \[CLS\].*tokenizer.kind=wordpiece"):
        train(_config(packed_dir, tmp_path / "char", "masked_lm", 2))
    gpt = "model={family: gpt, n_layer: 1, n_head: 2, n_embd: 16, block_size: 16}"
    with pytest.raises(LmlabError, match="masked_lm_nsp trains a bidirectional encoder.*gpt"):
        train(_config(wordpiece_dir, tmp_path / "gpt", "masked_lm_nsp", 2, gpt))
    with pytest.raises(LmlabError, match="causal_lm predicts the next token, which a bert model can see"):
        train(_config(wordpiece_dir, tmp_path / "bert", "causal_lm", 2))
