"""`lmlab.pipeline`: each task against a direct forward of the model, and against transformers and
sentence-transformers run on the same weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import BLOCK, LABELS, TEXTS, tiny_pipeline_runs

from lmlab.errors import LmlabError
from lmlab.generate import GenerationParams, generate_text
from lmlab.models import load_model
from lmlab.models.hf_bert import export_bert
from lmlab.pipelines import format_answer, json_line, pipeline
from lmlab.tokenizers import Tokenizer


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    return tiny_pipeline_runs(tmp_path_factory.mktemp("pipelines"))


def framed(tokenizer: Tokenizer, text: str, block_size: int) -> list[int]:
    """How `lmlab tune` frames a text: [CLS] text [SEP] for a BERT, text then end-of-text for a GPT, cut to fit."""
    cls = tokenizer.token_to_id("[CLS]")
    if cls is not None:
        return [cls] + tokenizer.encode(text)[: block_size - 2] + [tokenizer.token_to_id("[SEP]")]
    return tokenizer.encode(text)[: block_size - 1] + [tokenizer.eos_id]


@pytest.mark.parametrize("base", ["bert", "gpt"])
def test_sentiment_scores_are_the_softmax_of_the_classifier_one_text_at_a_time(runs, base):
    classify = pipeline("sentiment-analysis", model=runs / f"{base}-tuned", device="cpu", batch_size=2)
    everything = classify(TEXTS, top_k=None)
    model, tokenizer = load_model(runs / f"{base}-tuned"), Tokenizer.load(runs / f"{base}-tuned" / "tokenizer.json")
    assert len(framed(tokenizer, TEXTS[3], 10_000)) > BLOCK  # the cut is exercised
    for text, answer in zip(TEXTS, everything, strict=True):
        with torch.no_grad():  # unpadded, alone: batching and padding must not change a score
            probs = model(torch.tensor([framed(tokenizer, text, BLOCK)])).logits.softmax(dim=-1)[0]
        assert sorted(a["label"] for a in answer) == LABELS
        assert [a["score"] for a in answer] == sorted((a["score"] for a in answer), reverse=True)
        assert sum(a["score"] for a in answer) == pytest.approx(1.0, abs=1e-6)
        for a in answer:
            assert a["score"] == pytest.approx(float(probs[LABELS.index(a["label"])]), abs=1e-6)
    top = classify(TEXTS)
    assert top == [answer[:1] for answer in everything]
    assert classify(TEXTS[0]) == top[0] and classify(TEXTS[:2], top_k=2) == [a[:2] for a in everything[:2]]
    assert len({round(a[0]["score"], 6) for a in top}) == len(TEXTS)  # not vacuous: the texts are told apart
    assert format_answer("sentiment-analysis", TEXTS[0], top[0]).startswith(TEXTS[0] + "\t")


def assert_same_predictions(ours: list, theirs: list) -> None:
    """The same tokens, texts and sequences, scores within 1e-5, for every text and every [MASK] in it."""
    for mine, reference in zip(ours, theirs, strict=True):
        mine, reference = (mine, reference) if isinstance(mine[0], list) else ([mine], [reference])
        for a, b in zip(mine, reference, strict=True):
            assert [(p["token"], p["token_str"], p["sequence"]) for p in a] == [
                (p["token"], p["token_str"], p["sequence"]) for p in b]
            assert max(abs(p["score"] - q["score"]) for p, q in zip(a, b, strict=True)) <= 1e-5


MASKED = ["the film was [MASK] and the actors were great", "[MASK] story , badly [MASK]", "a [MASK] happy film"]


def test_fill_mask_is_the_mlm_head_argmax_and_equals_transformers(runs, tmp_path):
    from transformers import pipeline as hf_pipeline

    fill = pipeline("fill-mask", model=runs / "bert", device="cpu", batch_size=2)
    answers = fill(MASKED, top_k=4)
    model, tokenizer = load_model(runs / "bert"), Tokenizer.load(runs / "bert" / "tokenizer.json")
    mask_id = tokenizer.token_to_id("[MASK]")
    for text, answer in zip(MASKED, answers, strict=True):
        ids = tokenizer.encode(text, add_special_tokens=True)
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0]
        positions = [p for p, token in enumerate(ids) if token == mask_id]
        per_mask = answer if len(positions) > 1 else [answer]
        assert len(per_mask) == len(positions)
        for p, predictions in zip(positions, per_mask, strict=True):
            assert len(predictions) == 4
            assert predictions[0]["token"] == int(logits[p].argmax())
            assert predictions[0]["score"] == pytest.approx(float(logits[p].softmax(-1).max()), abs=1e-6)
            assert predictions[0]["token_str"] == tokenizer.decode([predictions[0]["token"]])
    assert max(a["score"] for a in answers[0]) > 0.1  # peaked, so 1e-5 below means something

    export_bert(model, tmp_path / "hf", tokenizer_json=runs / "bert" / "tokenizer.json")
    theirs = hf_pipeline("fill-mask", model=str(tmp_path / "hf"), tokenizer=str(tmp_path / "hf"), device="cpu")
    assert_same_predictions(answers, [theirs(text, top_k=4) for text in MASKED])
    # the exported Hugging Face directory is a model for the pipeline too, with the same answers
    assert_same_predictions(answers, pipeline("fill-mask", model=tmp_path / "hf", device="cpu")(MASKED, top_k=4))
    assert "[MASK] 2:" in format_answer("fill-mask", MASKED[1], answers[1])


def test_fill_mask_refuses_models_without_a_masked_lm_head(runs):
    with pytest.raises(LmlabError, match="no masked-LM head.*feature-extraction"):
        pipeline("fill-mask", model="all-MiniLM-L6-v2", device="cpu")
    with pytest.raises(LmlabError, match="needs a BERT.*not a gpt"):
        pipeline("fill-mask", model=runs / "gpt", device="cpu")
    with pytest.raises(LmlabError, match="text 1 has no \\[MASK\\]"):
        pipeline("fill-mask", model=runs / "bert", device="cpu")(["a [MASK] film", "no mask here"])


SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The new movie is awesome",
    "The cat sits outside",
    "Hello!",
    "An unusually long sentence, with commas, numbers like 3.14159 and 2026, and punctuation; does it still agree?",
    "这部电影非常好看！",
]


def test_feature_extraction_on_minilm_is_sentence_transformers_embedding(monkeypatch):
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(key, "1")
    from sentence_transformers import SentenceTransformer

    from lmlab.datasets.weights import pretrained_directory

    extract = pipeline("feature-extraction", model="all-MiniLM-L6-v2", device="cpu", batch_size=3)
    ours = torch.tensor(extract(SENTENCES, pooling="mean"))
    theirs = torch.from_numpy(SentenceTransformer(str(pretrained_directory("all-MiniLM-L6-v2")),
                                                  device="cpu").encode(SENTENCES))
    cosine = F.cosine_similarity(ours, theirs, dim=-1)
    assert float(cosine.min()) >= 0.99999, cosine
    assert torch.allclose(ours.norm(dim=-1), torch.ones(len(SENTENCES)), atol=1e-5)
    # per token: the hidden states whose normalised mean that vector is
    tokens = torch.tensor(extract(SENTENCES[0]))
    assert tokens.shape == (len(extract.tokenizer.encode(SENTENCES[0], add_special_tokens=True)), 384)
    assert torch.allclose(F.normalize(tokens.mean(dim=0), dim=-1), ours[0], atol=1e-5)
    assert not torch.allclose(torch.tensor(extract(SENTENCES[0], pooling="mean", normalize=False)), ours[0])


def test_feature_extraction_on_a_gpt_is_its_features(runs):
    extract = pipeline("feature-extraction", model=runs / "gpt", device="cpu", batch_size=2)
    model, tokenizer = load_model(runs / "gpt"), Tokenizer.load(runs / "gpt" / "tokenizer.json")
    texts = TEXTS[:3]
    states, last = extract(texts), extract(texts, pooling="last")
    for text, mine, vector in zip(texts, states, last, strict=True):
        with torch.no_grad():
            hidden = model.features(torch.tensor([tokenizer.encode(text)]))[0]
        assert torch.allclose(torch.tensor(mine), hidden, atol=1e-5)
        assert torch.allclose(torch.tensor(vector), hidden[-1], atol=1e-5)
    assert "tokens x 32" in format_answer("feature-extraction", texts[0], states[0])
    with pytest.raises(LmlabError, match="pooling must be one of"):
        extract(texts, pooling="max")


def test_greedy_text_generation_is_generate_text(runs):
    generate = pipeline("text-generation", model=runs / "gpt", device="cpu")
    prompts = ["the film", "an awful story", "good"]
    answers = generate(prompts, max_new_tokens=12, temperature=0)
    model, tokenizer = load_model(runs / "gpt"), Tokenizer.load(runs / "gpt" / "tokenizer.json")
    expected = generate_text(model, tokenizer, prompts, GenerationParams(max_new_tokens=12, temperature=0))
    assert answers == [[{"generated_text": p + e}] for p, e in zip(prompts, expected, strict=True)]
    assert any(e for e in expected)
    sampled = generate(prompts[0], max_new_tokens=12, temperature=1.5, top_k=20, seed=3)
    assert sampled == generate(prompts[0], max_new_tokens=12, temperature=1.5, top_k=20, seed=3)
    assert json.loads(json_line(prompts[0], sampled)) == {"input": prompts[0], "output": sampled}
    with pytest.raises(LmlabError, match="temperature"):
        generate(prompts, temperature=-1)
    with pytest.raises(LmlabError, match="causal language model.*not a bert"):
        pipeline("text-generation", model=runs / "bert", device="cpu")


def test_mistakes_name_what_exists(runs):
    with pytest.raises(LmlabError, match="unknown pipeline task 'summarize'.*fill-mask.*text-generation"):
        pipeline("summarize", model=runs / "bert")
    for task, head in (("question-answering", "qa"), ("token-classification", "tagging")):
        with pytest.raises(LmlabError, match=f"{task} needs a run of `lmlab tune task={head}`"):
            pipeline(task, model=runs / "bert")
    with pytest.raises(LmlabError, match="fine-tuned with `lmlab tune`.*not a bert"):
        pipeline("sentiment-analysis", model=runs / "bert", device="cpu")
    with pytest.raises(LmlabError, match="no such directory.*all-MiniLM-L6-v2"):
        pipeline("fill-mask", model=runs / "missing")
    classify = pipeline("text-classification", model=runs / "bert-tuned", device="cpu")
    with pytest.raises(LmlabError, match="unknown option 'pooling'.*top_k"):
        classify("good", pooling="mean")
    with pytest.raises(LmlabError, match="top_k must be"):
        classify("good", top_k=0)
    with pytest.raises(LmlabError, match="input 1 is a int"):
        classify(["good", 3])


def test_text_generation_on_an_n_gram_run_is_its_language_model(packed_dir, tmp_path):
    from lmlab.runs import open_run
    from lmlab.train import read_train_config, train_run

    run = train_run(read_train_config(None, [f"data={packed_dir}", f"run_dir={tmp_path / 'kn3'}", "model.family=ngram",
                                             "model.unit=character", "model.order=3",
                                             "model.discount_fallback=true"])).run_dir
    prompts = ["To be", "中国"]
    answers = pipeline("text-generation", model=run)(prompts, max_new_tokens=10, seed=5)
    expected = open_run(run).language_model().generate(prompts, GenerationParams(max_new_tokens=10, seed=5))
    assert answers == [[{"generated_text": p + e}] for p, e in zip(prompts, expected, strict=True)]
    assert all(e for e in expected)
    with pytest.raises(LmlabError, match=r"needs a neural network, and a 3-gram .* is not one; it is a count-based "
                       r"language model \(3-gram .*\) that scores and continues text: try lmlab generate"):
        pipeline("feature-extraction", model=run)
