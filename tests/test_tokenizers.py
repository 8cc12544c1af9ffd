"""Tokenizers: exact round trips, Chinese in every kind, saved files, and parity with transformers."""

import json
import random
from pydoc_data.topics import topics

import pytest
import regex
from tokenizers import pre_tokenizers
from transformers import GPT2Tokenizer, PreTrainedTokenizerFast

from lmlab.config import build_config
from lmlab.errors import LmlabError
from lmlab.tokenizers import Tokenizer, TokenizerConfig, load_gpt2_tokenizer, train_tokenizer

CHINESE = [
    "自然语言处理是人工智能的一个重要方向。",
    "我爱北京天安门，天安门上太阳升。",
    "语言模型根据上文预测下一个词。",
    "床前明月光，疑是地上霜。举头望明月，低头思故乡。",
]
ENGLISH = list(topics.values())[:40]
CORPUS = ENGLISH + CHINESE * 10

TRICKY = [
    "",
    " ",
    "   leading and trailing   ",
    "tabs\tand\nnew\r\nlines\n\n\n",
    "你好，世界！Hello, 世界 mixed 中文 and English.",
    "emoji 👍🏽 and a family 👨‍👩‍👧‍👦 and flags 🇨🇳🇬🇧",
    "combining: e\u0301 a\u0308 \u0915\u094d\u0937",
    "Ελληνικά, русский, العربية, עברית, 日本語のテキスト, 한국어",
    "it's they're we've I'm you'll he'd",
    "numbers 1234567890 and ２０２４年",
    "control \x00\x07\x1b and zero-width \u200b\u200d\ufeff",
    "<|endoftext|> in the middle of text",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 outside the BMP 𠀀𪚥",
]


def random_texts(count: int, seed: int = 0) -> list[str]:
    """Texts of random code points from every plane (surrogates excluded: they are not text)."""
    rng = random.Random(seed)
    ranges = [(0x20, 0x7E), (0x0, 0x20), (0x4E00, 0x9FFF), (0x1F300, 0x1FAFF), (0x300, 0x36F), (0x0, 0x10FFFF)]
    texts = []
    for _ in range(count):
        chars = []
        while len(chars) < rng.randint(1, 30):
            low, high = rng.choice(ranges)
            code = rng.randint(low, high)
            if not 0xD800 <= code <= 0xDFFF:
                chars.append(chr(code))
        texts.append("".join(chars))
    return texts


@pytest.fixture(scope="module")
def bpe() -> Tokenizer:
    return train_tokenizer(CORPUS, TokenizerConfig(kind="bpe", vocab_size=600))


@pytest.fixture(scope="module")
def wordpiece() -> Tokenizer:
    return train_tokenizer(CORPUS, TokenizerConfig(kind="wordpiece", vocab_size=800, min_frequency=1))


@pytest.fixture(scope="module")
def char() -> Tokenizer:
    return train_tokenizer(CORPUS, TokenizerConfig(kind="char", vocab_size=5000, min_frequency=1))


# Byte-level BPE


@pytest.mark.parametrize("text", TRICKY)
def test_bpe_round_trips_tricky_text(bpe, text):
    assert bpe.decode(bpe.encode(text)) == text


def test_bpe_round_trips_random_unicode(bpe):
    texts = random_texts(300)
    for text, ids in zip(texts, bpe.encode_batch(texts), strict=True):
        assert bpe.decode(ids) == text


def test_bpe_learns_merges_and_keeps_all_bytes(bpe):
    assert 256 < bpe.vocab_size <= 600
    assert set(pre_tokenizers.ByteLevel.alphabet()) <= set(bpe.backend.get_vocab())
    # Frequent Chinese text ends up shorter in tokens than in UTF-8 bytes.
    text = CHINESE[0]
    assert len(bpe.encode(text)) < len(text.encode("utf-8"))


def test_bpe_pre_tokenization_is_gpt2s_regex(bpe):
    gpt2_pattern = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
    for text in TRICKY + random_texts(50, seed=1):
        pieces = bpe.backend.pre_tokenizer.pre_tokenize_str(text)
        assert [text[start:end] for _, (start, end) in pieces] == regex.findall(gpt2_pattern, text)


def test_bpe_eos_is_endoftext(bpe):
    assert bpe.eos_id == bpe.token_to_id("<|endoftext|>")
    assert bpe.pad_id is None
    assert bpe.encode("a<|endoftext|>b").count(bpe.eos_id) == 1
    assert bpe.decode([bpe.eos_id], skip_special_tokens=True) == ""


def test_bpe_vocab_must_hold_all_bytes():
    with pytest.raises(LmlabError, match="vocab_size"):
        train_tokenizer(CORPUS, TokenizerConfig(kind="bpe", vocab_size=200))


# WordPiece


def test_wordpiece_splits_chinese_per_character(wordpiece):
    text = "自然语言处理"
    tokens = [wordpiece.id_to_token(i) for i in wordpiece.encode(text)]
    assert tokens == list(text)
    assert wordpiece.decode(wordpiece.encode(text)).replace(" ", "") == text


def test_wordpiece_is_bert_style(wordpiece):
    assert wordpiece.eos_id == wordpiece.token_to_id("[SEP]")
    assert wordpiece.pad_id == wordpiece.token_to_id("[PAD]")
    ids = wordpiece.encode("the object", add_special_tokens=True)
    assert ids[0] == wordpiece.token_to_id("[CLS]") and ids[-1] == wordpiece.eos_id
    assert wordpiece.encode("the object") == ids[1:-1]
    assert wordpiece.decode(wordpiece.encode("the object, and its value.")) == "the object, and its value."
    unknown = wordpiece.encode("ⓩⓩⓩ")
    assert unknown == [wordpiece.token_to_id("[UNK]")]
    pieces = [wordpiece.id_to_token(i) for i in wordpiece.encode("objectification")]
    assert len(pieces) > 1 and all(p.startswith("##") for p in pieces[1:])


def test_wordpiece_lowercase_strips_accents():
    tokenizer = train_tokenizer(
        ["Café naïve RÉSUMÉ"] * 5, TokenizerConfig(kind="wordpiece", vocab_size=100, lowercase=True)
    )
    assert tokenizer.decode(tokenizer.encode("CAFÉ Naïve")) == "cafe naive"


# Characters


@pytest.mark.parametrize("text", [CHINESE[1], "Hello,\n  world!  ", "床前明月光"])
def test_char_round_trips_known_characters(char, text):
    ids = char.encode(text)
    assert len(ids) == len(text)
    assert char.decode(ids) == text


def test_char_keeps_most_frequent_characters():
    texts = ["a" * 5 + "b" * 4 + "c" * 3 + "d" * 2 + "e"]
    tokenizer = train_tokenizer(texts, TokenizerConfig(kind="char", vocab_size=5, min_frequency=1))
    assert set(tokenizer.backend.get_vocab()) == {"<|endoftext|>", "<unk>", "a", "b", "c"}
    assert tokenizer.encode("abd") == [*tokenizer.encode("ab"), tokenizer.token_to_id("<unk>")]
    assert tokenizer.eos_id == tokenizer.token_to_id("<|endoftext|>")


# Config, saving and loading


def test_config_defaults_special_tokens_per_kind():
    assert TokenizerConfig().special_tokens == ["<|endoftext|>"]
    assert TokenizerConfig(kind="wordpiece").special_tokens == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert TokenizerConfig(kind="wordpiece", special_tokens=["[UNK]"]).special_tokens == ["[UNK]"]
    with pytest.raises(LmlabError, match="vocab_sise"):
        build_config(TokenizerConfig, {"vocab_sise": 10})
    with pytest.raises(LmlabError, match="kind"):
        build_config(TokenizerConfig, {"kind": "sentencepiece"})


def test_empty_or_non_text_training_input_is_an_error():
    with pytest.raises(LmlabError, match="empty"):
        train_tokenizer(iter(["", ""]), TokenizerConfig(kind="char"))
    with pytest.raises(LmlabError, match="training text 1: expected text"):
        train_tokenizer(["fine", 42], TokenizerConfig(kind="char"))


@pytest.mark.parametrize("name", ["bpe", "wordpiece", "char"])
def test_save_load_gives_the_same_tokenizer(name, request, tmp_path):
    tokenizer = request.getfixturevalue(name)
    tokenizer.save(tmp_path / "tokenizer.json")
    loaded = Tokenizer.load(tmp_path / "tokenizer.json")
    assert loaded.backend.get_vocab() == tokenizer.backend.get_vocab()
    assert (loaded.eos_id, loaded.pad_id, loaded.vocab_size) == (
        tokenizer.eos_id,
        tokenizer.pad_id,
        tokenizer.vocab_size,
    )
    assert loaded.encode_batch(TRICKY) == tokenizer.encode_batch(TRICKY)
    assert [p.name for p in tmp_path.iterdir()] == ["tokenizer.json"]


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(LmlabError, match="no such tokenizer file"):
        Tokenizer.load(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "version": "1.0",\n  "model": {oops}\n}')
    with pytest.raises(LmlabError, match=r"broken.json:3: not valid JSON"):
        Tokenizer.load(broken)
    not_a_tokenizer = tmp_path / "other.json"
    not_a_tokenizer.write_text('{"model": {"type": "BPE", "vocab": 3}}')
    with pytest.raises(LmlabError, match="other.json: not a tokenizer.json"):
        Tokenizer.load(not_a_tokenizer)


@pytest.mark.parametrize("name", ["bpe", "wordpiece", "char"])
def test_same_ids_as_transformers(name, request, tmp_path):
    tokenizer = request.getfixturevalue(name)
    tokenizer.save(tmp_path / "tokenizer.json")
    reference = PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / "tokenizer.json"))
    texts = TRICKY + CHINESE + [ENGLISH[0][:500]]
    for text in texts:
        assert tokenizer.encode(text) == reference.encode(text, add_special_tokens=False)
        assert tokenizer.encode(text, add_special_tokens=True) == reference.encode(text)
    ids = tokenizer.encode(texts[4])
    assert tokenizer.decode(ids) == reference.decode(ids, clean_up_tokenization_spaces=False)


# Digits split, as LLaMA and Qwen2 do

NUMBERS = [f"{a} + {b} = {a + b}" for a, b in ((46, 97), (963, 681), (1234, 5678), (2024, 1))] * 30


@pytest.mark.parametrize("kind", ["bpe", "wordpiece"])
def test_split_digits_gives_every_digit_its_own_token(kind, tmp_path):
    texts = ENGLISH + NUMBERS
    merged = train_tokenizer(texts, TokenizerConfig(kind=kind, vocab_size=700, min_frequency=1))
    split = train_tokenizer(texts, TokenizerConfig(kind=kind, vocab_size=700, min_frequency=1, split_digits=True))
    text = "In 2024, 963 + 681 = 1644 and 你好 ２０２４"
    def numbers_in(tokenizer: Tokenizer) -> list[str]:
        pieces = [tokenizer.decode([i]).strip() for i in tokenizer.encode(text)]
        return [piece for piece in pieces if any(c.isdigit() for c in piece)]

    assert numbers_in(split) and all(len(piece) == 1 for piece in numbers_in(split))
    assert any(len(piece) > 1 for piece in numbers_in(merged))
    if kind == "bpe":
        assert split.decode(split.encode(text)) == text
    split.save(tmp_path / "tokenizer.json")  # the split is part of the file, so transformers splits alike
    reference = PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / "tokenizer.json"))
    for sample in [text, *NUMBERS[:4], *TRICKY]:
        assert split.encode(sample) == reference.encode(sample, add_special_tokens=False)
    assert Tokenizer.load(tmp_path / "tokenizer.json").encode(text) == split.encode(text)


def test_split_digits_is_refused_for_char_tokenizers():
    with pytest.raises(ValueError, match="split_digits: a char tokenizer"):
        TokenizerConfig(kind="char", split_digits=True)


# GPT-2's original files


@pytest.fixture
def tiny_gpt2_files(tmp_path):
    """A miniature encoder.json / vocab.bpe pair in OpenAI's layout: 256 bytes, a few merges, eos."""
    merges = [
        ("Ġ", "t"),
        ("h", "e"),
        ("Ġt", "he"),
        ("t", "he"),
        ("ä", "½"),
        ("ä½", "ł"),
        ("å", "¥"),
        ("å¥", "½"),
        ("ä½ł", "å¥½"),
    ]
    symbols = [*sorted(pre_tokenizers.ByteLevel.alphabet()), *(left + right for left, right in merges)]
    encoder = {symbol: i for i, symbol in enumerate(symbols)}
    encoder["<|endoftext|>"] = len(encoder)
    (tmp_path / "encoder.json").write_text(json.dumps(encoder), encoding="utf-8")
    bpe_text = "#version: 0.2\n" + "\n".join(f"{left} {right}" for left, right in merges) + "\n"
    (tmp_path / "vocab.bpe").write_text(bpe_text, encoding="utf-8")
    return tmp_path / "encoder.json", tmp_path / "vocab.bpe", encoder, merges


def test_gpt2_files_load_and_merge(tiny_gpt2_files):
    encoder_path, merges_path, encoder, merges = tiny_gpt2_files
    tokenizer = load_gpt2_tokenizer(encoder_path, merges_path)
    ids = tokenizer.encode("the the 你好<|endoftext|>")
    assert [tokenizer.id_to_token(i) for i in ids] == ["the", "Ġthe", "Ġ", "ä½łå¥½", "<|endoftext|>"]
    assert tokenizer.eos_id == encoder["<|endoftext|>"]
    reference = GPT2Tokenizer(vocab=encoder, merges=merges)
    for text in TRICKY:
        assert tokenizer.encode(text) == reference.encode(text)
        assert tokenizer.decode(tokenizer.encode(text)) == text


def test_gpt2_file_errors(tiny_gpt2_files, tmp_path):
    encoder_path, merges_path, _, _ = tiny_gpt2_files
    with pytest.raises(LmlabError, match="no such file"):
        load_gpt2_tokenizer(tmp_path / "nope.json", merges_path)
    bad_merges = tmp_path / "bad.bpe"
    bad_merges.write_text("#version: 0.2\nĠ t\nthree part merge\n", encoding="utf-8")
    with pytest.raises(LmlabError, match=r"bad.bpe:3: expected a merge"):
        load_gpt2_tokenizer(encoder_path, bad_merges)
    unknown_symbol = tmp_path / "unknown.bpe"
    unknown_symbol.write_text("#version: 0.2\nĠ t\nxyz q\n", encoding="utf-8")
    with pytest.raises(LmlabError, match="unknown.bpe: does not fit"):
        load_gpt2_tokenizer(encoder_path, unknown_symbol)
