"""Packing: shards hold exactly the encodings plus eos, splits are reproducible, windows are exact."""

import json

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer as Backend
from tokenizers import models, pre_tokenizers

from lmlab.data.packing import TokenShards, assign_split, pack_corpus, token_dtype
from lmlab.errors import LmlabError
from lmlab.tokenizers import Tokenizer, TokenizerConfig, train_tokenizer

DOCUMENTS = [f"第{i}篇：语言模型预测下一个词。Document {i} says hello {'again ' * (i % 5)}👋\n" for i in range(60)]


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return train_tokenizer(DOCUMENTS, TokenizerConfig(kind="bpe", vocab_size=400))


@pytest.fixture
def packed(tokenizer, tmp_path):
    pack_corpus(DOCUMENTS, tokenizer, tmp_path / "packed", val_fraction=0.2, seed=3)
    return TokenShards(tmp_path / "packed")


def expected_split_tokens(tokenizer, documents, split, seed, val_fraction):
    ids = []
    for index, text in enumerate(documents):
        if assign_split(index, seed, val_fraction) == split:
            ids += tokenizer.encode(text) + [tokenizer.eos_id]
    return ids


def test_shards_hold_encodings_plus_eos(packed, tokenizer):
    for split in ("train", "val"):
        expected = expected_split_tokens(tokenizer, DOCUMENTS, split, seed=3, val_fraction=0.2)
        assert packed.tokens(split).tolist() == expected
        assert packed.num_tokens(split) == len(expected)
    splits = packed.meta.splits
    assert splits["val"].documents > 0, "the hash should put some of 60 documents in val"
    assert splits["train"].documents + splits["val"].documents == len(DOCUMENTS)
    assert splits["train"].bytes + splits["val"].bytes == sum(len(d.encode("utf-8")) for d in DOCUMENTS)
    assert (packed.meta.vocab_size, packed.meta.eos_id, packed.meta.dtype) == (
        tokenizer.vocab_size,
        tokenizer.eos_id,
        "uint16",
    )


def test_split_is_reproducible_and_independent_of_chunking(tokenizer, tmp_path):
    def pack(name, **kwargs):
        pack_corpus(iter(DOCUMENTS), tokenizer, tmp_path / name, val_fraction=0.2, **kwargs)
        return {split: (tmp_path / name / f"{split}.bin").read_bytes() for split in ("train", "val")}

    first = pack("a", seed=3)
    assert pack("b", seed=3, chunk_documents=7) == first
    assert pack("c", seed=3, chunk_documents=1) == first
    assert pack("d", seed=4) != first


def test_val_fraction_is_roughly_respected():
    in_val = sum(assign_split(i, seed=0, val_fraction=0.1) == "val" for i in range(5000))
    assert 400 < in_val < 600


def test_val_gets_the_last_document_when_the_hash_gives_it_none(tokenizer, tmp_path):
    documents = ["first document", "second document", "third"]
    meta = pack_corpus(documents, tokenizer, tmp_path / "p", val_fraction=1e-9)
    shards = TokenShards(tmp_path / "p")
    assert shards.tokens("val").tolist() == tokenizer.encode("third") + [tokenizer.eos_id]
    first, second = tokenizer.encode_batch(documents[:2])
    assert shards.tokens("train").tolist() == first + [tokenizer.eos_id] + second + [tokenizer.eos_id]
    assert meta.splits["val"].bytes == len("third")
    assert meta.splits["train"].documents == 2


def test_train_is_never_empty(tokenizer, tmp_path):
    meta = pack_corpus(["one", "two"], tokenizer, tmp_path / "p", val_fraction=1 - 1e-9)
    assert meta.splits["train"].documents == 1 and meta.splits["val"].documents == 1
    meta = pack_corpus(["only"], tokenizer, tmp_path / "q", val_fraction=1 - 1e-9)
    assert meta.splits["train"].documents == 1 and meta.splits["val"].tokens == 0
    with pytest.raises(LmlabError, match="no validation split"):
        TokenShards(tmp_path / "q").iter_windows("val", block_size=4, batch_size=2)


def test_chinese_bytes_are_utf8_bytes(tokenizer, tmp_path):
    meta = pack_corpus(["你好", "世界！"], tokenizer, tmp_path / "p")
    assert meta.splits["train"].bytes + meta.splits["val"].bytes == 6 + 9


def test_dtype_follows_vocab_size(tmp_path):
    assert token_dtype(65536) == np.uint16 and token_dtype(65537) == np.uint32
    words = {f"w{i}": i for i in range(70_000)}
    backend = Backend(models.WordLevel(vocab={**words, "<|endoftext|>": 70_000}, unk_token="w0"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    big = Tokenizer(backend)
    meta = pack_corpus(["w69999 w1 w65536", "w3"], big, tmp_path / "p", val_fraction=0.5)
    assert meta.dtype == "uint32"
    shards = TokenShards(tmp_path / "p")
    all_tokens = shards.tokens("train").tolist() + shards.tokens("val").tolist()
    assert sorted(all_tokens) == sorted([69999, 1, 65536, 70_000, 3, 70_000])
    assert (tmp_path / "p" / "train.bin").stat().st_size == 4 * shards.num_tokens("train")


def test_no_documents_or_no_tokens_is_an_error(tmp_path):
    no_eos = train_tokenizer(["abc"], TokenizerConfig(kind="char", special_tokens=[], min_frequency=1))
    assert no_eos.eos_id is None
    with pytest.raises(LmlabError, match="no documents"):
        pack_corpus([], no_eos, tmp_path / "p")
    with pytest.raises(LmlabError, match="no tokens"):
        pack_corpus(["", ""], no_eos, tmp_path / "p")
    assert not (tmp_path / "p").exists()


def test_failure_midway_leaves_nothing(tokenizer, tmp_path):
    def documents():
        yield from DOCUMENTS[:5]
        raise RuntimeError("reader crashed")

    with pytest.raises(RuntimeError):
        pack_corpus(documents(), tokenizer, tmp_path / "p", chunk_documents=2)
    with pytest.raises(LmlabError, match="document 3: expected text"):
        pack_corpus(["a", "b", "c", 4], tokenizer, tmp_path / "p", chunk_documents=2)
    assert list(tmp_path.iterdir()) == []


def test_corrupt_or_incomplete_directory_is_an_error(packed, tmp_path):
    directory = packed.directory
    meta_path = directory / "meta.json"
    meta = json.loads(meta_path.read_text())
    with (directory / "train.bin").open("r+b") as f:
        f.truncate(10)
    with pytest.raises(LmlabError, match="train.bin: 10 bytes"):
        TokenShards(directory)
    meta_path.write_text('{"format": 1,\n "dtype": }')
    with pytest.raises(LmlabError, match="meta.json:2: not valid JSON"):
        TokenShards(directory)
    meta_path.write_text(json.dumps({**meta, "dtype": "float32"}))
    with pytest.raises(LmlabError, match="meta.json: dtype"):
        TokenShards(directory)
    meta_path.unlink()
    with pytest.raises(LmlabError, match="meta.json: no such meta.json"):
        TokenShards(directory)


@pytest.mark.parametrize(("block_size", "batch_size"), [(1, 3), (7, 2), (16, 64)])
def test_windows_predict_every_token_once(packed, block_size, batch_size):
    for split in ("train", "val"):
        tokens = torch.from_numpy(packed.tokens(split).astype(np.int64))
        xs, ys = [], []
        for x, y in packed.iter_windows(split, block_size, batch_size):
            assert x.shape == y.shape and x.shape[0] <= batch_size and x.shape[1] <= block_size
            assert x.dtype == torch.int64
            xs.append(x.flatten())
            ys.append(y.flatten())
        assert torch.equal(torch.cat(xs), tokens[:-1])
        assert torch.equal(torch.cat(ys), tokens[1:])


def test_sampling_is_determined_by_the_generator(packed):
    tokens = packed.tokens("train")
    x, y = packed.sample_batch("train", 8, 16, torch.Generator().manual_seed(5))
    assert x.shape == y.shape == (8, 16) and x.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])
    for row in x.tolist():  # every row is a real window of the split
        starts = [i for i in range(len(tokens) - 16) if tokens[i : i + 16].tolist() == row]
        assert starts
    torch.manual_seed(123)  # the global generator must not matter
    again = packed.sample_batch("train", 8, 16, torch.Generator().manual_seed(5))
    assert torch.equal(again[0], x) and torch.equal(again[1], y)
    other = packed.sample_batch("train", 8, 16, torch.Generator().manual_seed(6))
    assert not torch.equal(other[0], x)


def test_sampling_reaches_the_last_token(tokenizer, tmp_path):
    pack_corpus(["ab", "cd"], tokenizer, tmp_path / "p")
    shards = TokenShards(tmp_path / "p")
    tokens = shards.tokens("train")
    block_size = len(tokens) - 1  # exactly one window fits
    x, y = shards.sample_batch("train", 4, block_size, torch.Generator().manual_seed(0))
    assert (y == torch.from_numpy(tokens[1:].astype(np.int64))).all()
    with pytest.raises(LmlabError, match="fewer than block_size"):
        shards.sample_batch("train", 4, block_size + 1, torch.Generator())
    with pytest.raises(LmlabError, match="split must be one of"):
        shards.tokens("test")


def test_limited_windows_are_spread_over_the_whole_split(packed):
    tokens = torch.from_numpy(packed.tokens("train").astype(np.int64))
    block = 4
    full_windows = (len(tokens) - 1) // block
    batches = list(packed.iter_windows("train", block, 3, max_targets=5 * block))
    inputs = torch.cat([x for x, _ in batches])
    targets = torch.cat([y for _, y in batches])
    assert inputs.shape == (5, block) and [len(x) for x, _ in batches] == [3, 2]
    last = (full_windows - 1) * block
    assert torch.equal(inputs[0], tokens[:block]) and torch.equal(inputs[-1], tokens[last : last + block])
    assert torch.equal(targets[-1], tokens[last + 1 : last + block + 1])
