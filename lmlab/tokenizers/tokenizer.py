"""`Tokenizer`: the one tokenizer type the rest of lmlab sees.

It is a thin wrapper around a Hugging Face `tokenizers.Tokenizer` (kept as `.backend`), whose
``tokenizer.json`` is the saved format, so a tokenizer trained here loads unchanged in
transformers (``PreTrainedTokenizerFast(tokenizer_file=...)``) and the other way round.

The wrapper adds what a language model needs to know and the library leaves implicit:
which id ends a document (`eos_id`) and which pads a batch (`pad_id`). Both are found by
name in the vocabulary, so they also work for tokenizers imported from elsewhere:

    eos: "<|endoftext|>" (GPT-2, lmlab's bpe and char), "[SEP]" (BERT), "</s>" (T5, LLaMA), "<eos>"
    pad: "[PAD]" (BERT), "<pad>" (T5), "<|padding|>"
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import tokenizers

from lmlab.errors import LmlabError
from lmlab.files import atomic_path, read_json

EOS_TOKENS = ("<|endoftext|>", "[SEP]", "</s>", "<eos>")
PAD_TOKENS = ("[PAD]", "<pad>", "<|padding|>")


def with_digits_split(pre_tokenizer: tokenizers.pre_tokenizers.PreTokenizer,
                      split_digits: bool) -> tokenizers.pre_tokenizers.PreTokenizer:
    """`pre_tokenizer`, after cutting every digit into a piece of its own when `split_digits` (LLaMA's and
    Qwen2's choice): merges never join digits, so "1234" is 1, 2, 3, 4 as "1243" is, and arithmetic reads
    numbers digit by digit instead of in whatever chunks the corpus happened to make frequent."""
    if not split_digits:
        return pre_tokenizer
    return tokenizers.pre_tokenizers.Sequence([tokenizers.pre_tokenizers.Digits(individual_digits=True), pre_tokenizer])


class Tokenizer:
    """Text <-> token ids, with the end-of-document and padding ids a language model needs."""

    def __init__(self, backend: tokenizers.Tokenizer) -> None:
        self.backend = backend
        self.eos_id = self._first_present(EOS_TOKENS)
        self.pad_id = self._first_present(PAD_TOKENS)

    def _first_present(self, names: Sequence[str]) -> int | None:
        for name in names:
            token_id = self.backend.token_to_id(name)
            if token_id is not None:
                return token_id
        return None

    @property
    def vocab_size(self) -> int:
        """Number of ids, special tokens included: every id is below this."""
        return self.backend.get_vocab_size(with_added_tokens=True)

    @property
    def eos_token(self) -> str | None:
        return None if self.eos_id is None else self.id_to_token(self.eos_id)

    def encode(self, text: str, *, add_special_tokens: bool = False) -> list[int]:
        """Token ids of `text`.

        Special tokens such as BERT's ``[CLS] ... [SEP]`` frame are only added on request: lmlab
        marks document ends itself (packing appends `eos_id`), and a frame around every piece of a
        document would teach a model that text starts everywhere.
        """
        return self.backend.encode(text, add_special_tokens=add_special_tokens).ids

    def encode_batch(self, texts: Sequence[str], *, add_special_tokens: bool = False) -> list[list[int]]:
        """`encode` for many texts at once; the library spreads the work over all CPU cores."""
        encodings = self.backend.encode_batch(list(texts), add_special_tokens=add_special_tokens)
        return [encoding.ids for encoding in encodings]

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = False) -> str:
        """Text of `ids`. Special tokens are kept by default so that nothing is silently lost."""
        return self.backend.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def token_to_id(self, token: str) -> int | None:
        return self.backend.token_to_id(token)

    def id_to_token(self, token_id: int) -> str | None:
        return self.backend.id_to_token(token_id)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write ``tokenizer.json`` atomically: a crash leaves the old file or the new one."""
        with atomic_path(path) as tmp:
            self.backend.save(str(tmp))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Tokenizer:
        """Read a ``tokenizer.json``; a missing or damaged file is an error that names it."""
        spec = read_json(path, "tokenizer file")
        try:
            backend = tokenizers.Tokenizer.from_str(json.dumps(spec))
        except Exception as exc:  # the library reports every malformed field as a bare Exception
            raise LmlabError(f"{path}: not a tokenizer.json the tokenizers library can read ({exc})") from None
        return cls(backend)

    def __repr__(self) -> str:
        model = type(self.backend.model).__name__
        return f"Tokenizer({model}, vocab_size={self.vocab_size}, eos={self.eos_token!r})"
