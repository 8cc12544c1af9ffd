"""`lmlab tune`: methods train only their weights, the loop keeps the best and stops early, FGM/PGD, compare."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from png_checks import drawn_png, saved_figures

from lmlab.cli import main
from lmlab.datasets.labelled import Example
from lmlab.errors import LmlabError
from lmlab.models import load_model, save_model
from lmlab.models.bert import BERT, BertConfig
from lmlab.models.gpt import GPT, GPTConfig
from lmlab.tokenizers import Tokenizer, TokenizerConfig, train_tokenizer
from lmlab.train.loop import LoopConfig, fit
from lmlab.train.optim import OptimizerConfig, ScheduleConfig
from lmlab.tune.adversarial import FGM, PGD
from lmlab.tune.methods import MethodConfig
from lmlab.tune.model import TunedModel, tuned_config_from
from lmlab.tune.params import trainable_parameters
from lmlab.tune.runner import read_tune_config, tune
from lmlab.tune.tasks import TASKS
from lmlab.tune.tasks.base import HeadConfig, TaskData
from lmlab.tune.tasks.classification import ClassificationTask, SequenceClassification, encode_examples

POSITIVE, NEGATIVE = ["good", "great", "lovely", "happy"], ["bad", "awful", "sad", "poor"]
FILLER = ["the", "movie", "was", "really", "quite", "long", "and", "the", "story"]


def keyword_examples(count: int, seed: int = 0) -> list[dict[str, str]]:
    """A task a small model learns in a few dozen steps: the label is the sentiment word hidden in filler."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        label = rng.choice(["pos", "neg"])
        words = rng.sample(FILLER, 5) + [rng.choice(POSITIVE if label == "pos" else NEGATIVE)]
        rng.shuffle(words)
        rows.append({"text": " ".join(words) + f" {i}", "label": label})
    return rows


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A tiny GPT base run, a tiny BERT base run and a labelled JSONL file."""
    root = tmp_path_factory.mktemp("tune")
    texts = [row["text"] for row in keyword_examples(400, seed=1)]
    char = train_tokenizer(texts, TokenizerConfig(kind="char", vocab_size=200))
    torch.manual_seed(0)
    save_model(GPT(GPTConfig(vocab_size=char.vocab_size, block_size=64, n_layer=2, n_head=2, n_embd=32)), root / "gpt")
    char.save(root / "gpt" / "tokenizer.json")
    wordpiece = train_tokenizer(texts, TokenizerConfig(kind="wordpiece", vocab_size=300))
    save_model(BERT(BertConfig(vocab_size=wordpiece.vocab_size, block_size=64, n_layer=2, n_head=2, hidden_size=32,
                               intermediate_size=64)), root / "bert")
    wordpiece.save(root / "bert" / "tokenizer.json")
    (root / "reviews.jsonl").write_text("".join(json.dumps(row) + "\n" for row in keyword_examples(300)))
    return root


def tuned(base: Path, method: str, **settings) -> TunedModel:
    backbone = load_model(base)
    return TunedModel(tuned_config_from(backbone, ["neg", "pos"], HeadConfig(hidden=16),
                                        MethodConfig(method=method, **settings), 48), backbone=backbone)


@pytest.mark.parametrize("family", ["gpt", "bert"])
@pytest.mark.parametrize("method, trains", [
    ("full", lambda name: True),
    ("features", lambda name: name.startswith("head.")),
    ("lora", lambda name: name.startswith("head.") or ".lora_" in name),
    ("adapters", lambda name: name.startswith("head.") or ".adapter." in name or "ln" in name or "LayerNorm" in name),
    ("prompt", lambda name: name.startswith("head.") or name.endswith("prompt_embeddings")),
])
def test_each_method_trains_only_its_weights(workspace, family, method, trains):
    model = tuned(workspace / family, method)
    names = [name for name, param in model.named_parameters() if param.requires_grad]
    assert names and all(trains(name) for name in names), [n for n in names if not trains(n)]
    assert any(name.startswith("head.") for name in names)
    trainable, total = trainable_parameters(model)
    assert trainable == sum(p.numel() for p in {id(p): p for p in model.parameters() if p.requires_grad}.values())
    assert (trainable == total) == (method == "full")
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    output = model(ids, attention_mask=mask, labels=torch.tensor([0, 1]))
    assert output.logits.shape == (2, 2) and output.loss.requires_grad


def base_overrides(workspace: Path, run_dir: Path, base: str = "gpt") -> list[str]:
    return [f"base={workspace / base}", f"data={workspace / 'reviews.jsonl'}", f"run_dir={run_dir}",
            "train.max_steps=60", "train.eval_every=20", "train.batch_size=16", "train.device=cpu",
            "optimizer.lr=3e-3", "block_size=48", "train.early_stopping=null"]


def test_tune_beats_the_majority_class_and_the_run_reloads(workspace, tmp_path):
    cfg = read_tune_config(None, base_overrides(workspace, tmp_path / "run") + ["method.method=full"])
    summary = tune(cfg)
    assert summary["test_accuracy"] >= summary["majority_baseline"]["accuracy"] + 0.2
    assert summary["trainable_parameters"] == summary["total_parameters"]
    assert summary["peak_memory_mb"] > 0 and summary["wall_seconds"] > 0
    # the run directory is a model like any other: reloaded, it gives the accuracy the summary reports
    model = load_model(tmp_path / "run")
    assert isinstance(model, TunedModel)
    tokenizer = Tokenizer.load(tmp_path / "run" / "tokenizer.json")
    from lmlab.datasets.labelled import read_labelled

    test = read_labelled(workspace / "reviews.jsonl").splits["test"]
    examples = encode_examples([r.text for r in test], [r.label for r in test], summary["labels"], tokenizer, 48)
    with torch.no_grad():
        predictions = [int(model(torch.tensor([ids])).logits.argmax()) for ids in examples.ids]
    assert np.mean(np.array(predictions) == examples.labels) == pytest.approx(summary["test_accuracy"])


class LengthParity(ClassificationTask):
    """A toy task made of classification's pieces: is the text's number of characters even or odd?"""

    name = "length_parity"
    best_metric = "val_accuracy"

    def read(self, settings):
        data = super().read(settings)
        splits = {split: [Example(row.text, ("even", "odd")[len(row.text) % 2]) for row in rows]
                  for split, rows in data.splits.items()}
        return TaskData(splits, ["even", "odd"])


def test_a_task_in_the_registry_runs_through_tune_unchanged(workspace, tmp_path, monkeypatch):
    monkeypatch.setitem(TASKS, LengthParity.name, LengthParity())
    run = tmp_path / "parity"
    overrides = [o.replace("train.max_steps=60", "train.max_steps=20") for o in base_overrides(workspace, run)]
    # best_metric as TuneConfig's default (classification's figure): the task's own replaces it.
    summary = tune(read_tune_config(None, [*overrides, "task=length_parity", "limit_eval=20",
                                           "train.best_metric=val_macro_f1"]))
    assert summary["task"] == "length_parity" and summary["labels"] == ["even", "odd"]
    assert summary["test_examples"] == 20 and 0 <= summary["test_accuracy"] <= 1
    assert set(summary["majority_baseline"]) == {"accuracy", "macro_f1"}
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["best_metric"] == "val_accuracy"
    assert json.loads((run / "best.json").read_text())["metric"] == "val_accuracy"
    model = load_model(run)  # the task's head, built through the registry
    assert model.config.task == "length_parity" and model.head.layers[-1].out_features == 2
    known = "classification, tagging, qa, multiple_choice"
    with pytest.raises(LmlabError, match=f"task: .*unknown task 'length_parity'; known: {known}"):
        monkeypatch.delitem(TASKS, LengthParity.name)
        read_tune_config(None, [*overrides, "task=length_parity"])


class ScriptedObjective(SequenceClassification):
    """Real batches, but validation figures read from a script, to drive early stopping exactly."""

    def __init__(self, inner: SequenceClassification, script: list[float]):
        super().__init__(inner.train, inner.validation, inner.batch_size, inner.grad_accum, inner.seed, inner.pad_id)
        self.script, self.calls = script, 0

    def evaluate(self, model, device):
        value = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        return {"val_loss": 1.0 - value, "val_macro_f1": value}


class Settings:
    def __init__(self, loop: LoopConfig):
        self.optimizer, self.schedule, self.train = OptimizerConfig(lr=1e-3), ScheduleConfig(kind="constant"), loop


def test_early_stopping_keeps_the_best_evaluations_weights(workspace, tmp_path):
    model = tuned(workspace / "gpt", "full")
    tokenizer = Tokenizer.load(workspace / "gpt" / "tokenizer.json")
    rows = keyword_examples(64)
    data = encode_examples([r["text"] for r in rows], [r["label"] for r in rows], ["neg", "pos"], tokenizer, 48)
    objective = ScriptedObjective(SequenceClassification(data, data, 8, 1, 0, 0), [0.5, 0.7, 0.6, 0.65, 0.9])
    loop = LoopConfig(max_steps=100, batch_size=8, eval_every=2, checkpoint_every=50, log_every=2, device="cpu",
                      best_metric="val_macro_f1", early_stopping=2)
    result = fit(model, objective, Settings(loop), tmp_path)
    assert result.steps == 8  # evaluations at 2, 4 (best), 6 and 8: two without improvement
    best = json.loads((tmp_path / "best.json").read_text())
    assert best == {"step": 4, "metric": "val_macro_f1", "value": 0.7}
    final, kept = load_model(tmp_path), load_model(tmp_path / "best")
    for (name, a), (_, b) in zip(final.state_dict().items(), kept.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert json.loads((tmp_path / "summary.json").read_text())["best"]["step"] == 4


def test_fgm_adds_the_gradient_at_the_perturbed_embeddings_and_restores_them(workspace):
    torch.manual_seed(0)
    model = tuned(workspace / "gpt", "lora").eval()  # frozen table: the attack still needs its gradient
    batch = {"input_ids": torch.tensor([[5, 6, 7, 8, 9]]), "labels": torch.tensor([1])}
    table = model.input_embeddings().weight
    before = table.detach().clone()
    model(**batch).loss.backward()
    plain = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    FGM(epsilon=0.5).backward(model, lambda: model(**batch).loss, 1.0)
    assert torch.equal(table, before)
    assert not table.requires_grad
    # recompute by hand: the normalised table gradient, scaled to the used rows, added, loss, gradient
    table.requires_grad_(True)
    (gradient,) = torch.autograd.grad(model(**batch).loss, table)
    table.requires_grad_(False)
    used = gradient.norm(dim=1) > 0
    shift = 0.5 * before[used].norm(dim=1).mean() * int(used.sum()) ** 0.5 * gradient / gradient.norm()
    with torch.no_grad():
        table.add_(shift)
    for param in model.parameters():
        param.grad = None
    model(**batch).loss.backward()
    with torch.no_grad():
        table.copy_(before)
    adversarial = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    model(**batch).loss.backward()
    FGM(epsilon=0.5).backward(model, lambda: model(**batch).loss, 1.0)
    for name, param in model.named_parameters():
        if name in plain:
            assert torch.allclose(param.grad, plain[name] + adversarial[name], atol=1e-6), name
    assert any(not torch.allclose(adversarial[n], plain[n]) for n in plain)


def test_pgd_restores_the_table_and_changes_the_gradient(workspace):
    torch.manual_seed(0)
    model = tuned(workspace / "gpt", "full").eval()
    batch = {"input_ids": torch.tensor([[5, 6, 7, 8, 9]]), "labels": torch.tensor([0])}
    table = model.input_embeddings().weight
    before = table.detach().clone()
    model(**batch).loss.backward()
    plain = model.head.layers[-1].weight.grad.clone()
    PGD(epsilon=0.5, alpha=0.2, steps=3).backward(model, lambda: model(**batch).loss, 1.0)
    assert torch.equal(table.detach(), before)
    added = model.head.layers[-1].weight.grad - plain
    assert added.abs().sum() > 0 and not torch.allclose(added, plain)


def test_tune_compare_puts_methods_on_one_table(workspace, tmp_path, capsys, monkeypatch):
    saved = saved_figures(monkeypatch)
    out = tmp_path / "compare"
    # No optimizer.lr: each method's own default, the one `lmlab tune` gives it, is in play.
    overrides = [o for o in base_overrides(workspace, tmp_path / "unused") if not o.startswith(("run_dir", "optim"))]
    overrides = [o.replace("train.max_steps=60", "train.max_steps=20") for o in overrides]
    assert main(["tune", "compare", *overrides, "--methods", "features,lora", "--out", str(out)]) == 0
    for method in ("features", "lora"):
        written = yaml.safe_load((out / method / "config.yaml").read_text())
        alone = read_tune_config(None, [*overrides, f"method.method={method}"])
        assert written["optimizer"] == alone.optimizer.model_dump(mode="json")
        assert written["head"] == alone.head.model_dump(mode="json") and written["train"]["max_steps"] == 20
    rows = json.loads((out / "compare.json").read_text())
    assert [row["name"] for row in rows] == ["features", "lora"]
    for row in rows:
        assert 0 < row["trainable_parameters"] < row["total_parameters"]
        assert row["trainable_share"] == row["trainable_parameters"] / row["total_parameters"]
    assert "| features |" in (out / "compare.md").read_text()
    assert (out / "compare.png").stat().st_size > 0
    drawn_png(out / "compare.png")
    (f1, share) = saved[-1].axes  # a bar per method on each side: test macro-F1, trainable share
    assert [bar.get_width() for bar in f1.patches] == pytest.approx([row["test_macro_f1"] for row in rows][::-1])
    assert len(share.patches) == len(rows)
    assert (out / "lora" / "model.safetensors").exists()


def test_tune_compare_runs_composed_methods_beside_presets(workspace, tmp_path):
    out = tmp_path / "compare"
    overrides = [o for o in base_overrides(workspace, tmp_path / "unused", base="bert") if not o.startswith("run_dir")]
    overrides = [o.replace("train.max_steps=60", "train.max_steps=4").replace("eval_every=20", "eval_every=2")
                 for o in overrides]
    assert main(["tune", "compare", *overrides, "--methods", "lora+adapters,prompt+lora", "--out", str(out)]) == 0
    rows = {row["name"]: row for row in json.loads((out / "compare.json").read_text())}
    assert [rows[name]["method"] for name in rows] == ["lora+adapters", "lora+prompt"]
    for name, row in rows.items():  # each run trained what the combination trains, the head included
        backbone = load_model(workspace / "bert")
        model = TunedModel(tuned_config_from(backbone, row["labels"], HeadConfig(), MethodConfig(method=name), 48),
                           backbone=backbone)
        assert row["trainable_parameters"] == trainable_parameters(model)[0]
    assert (out / "prompt-lora" / "model.safetensors").exists()


def test_tune_mistakes_are_one_line_errors(workspace, tmp_path, capsys):
    assert main(["tune", *base_overrides(workspace, tmp_path / "r"), "method.method=lora", "method.lora.rank=4"]) == 2
    assert "rank" in capsys.readouterr().err
    with pytest.raises(LmlabError, match="labels"):
        encode_examples(["x"], ["maybe"], ["neg", "pos"], Tokenizer.load(workspace / "gpt" / "tokenizer.json"), 8)
    assert main(["tune", "compare", *base_overrides(workspace, tmp_path / "r"), "--methods", "magic"]) == 2
    assert "unknown method 'magic'" in capsys.readouterr().err


def test_attacked_logits_move_against_the_true_label_and_restore_the_table(workspace):
    from lmlab.tune.adversarial import attacked_logits

    torch.manual_seed(0)
    model = tuned(workspace / "gpt", "full").eval()
    batches = [{"input_ids": torch.tensor([[5, 6, 7, 8, 9], [9, 8, 7, 6, 5]]), "labels": torch.tensor([1, 0])}]
    table = model.input_embeddings().weight.detach().clone()
    with torch.no_grad():
        clean = model(batches[0]["input_ids"]).logits.log_softmax(-1)
    tiny = attacked_logits(model, batches, torch.device("cpu"), 1e-6)
    strong = torch.from_numpy(attacked_logits(model, batches, torch.device("cpu"), 0.5)).log_softmax(-1)
    assert torch.equal(model.input_embeddings().weight, table)
    assert np.allclose(tiny, model(batches[0]["input_ids"]).logits.detach().numpy(), atol=1e-5)
    rows = torch.arange(2)
    assert (strong[rows, batches[0]["labels"]] < clean[rows, batches[0]["labels"]]).all()  # the truth got less likely


def test_a_resumed_run_counts_the_evaluations_since_its_best_as_the_interrupted_one_had(workspace, tmp_path):
    """Stopped at step 6 (one evaluation without improvement since step 4), then resumed: the stop comes at
    step 8, as in the uninterrupted run above, and not two evaluations later."""
    model = tuned(workspace / "gpt", "full")
    tokenizer = Tokenizer.load(workspace / "gpt" / "tokenizer.json")
    rows = keyword_examples(64)
    data = encode_examples([r["text"] for r in rows], [r["label"] for r in rows], ["neg", "pos"], tokenizer, 48)
    loop = LoopConfig(max_steps=6, batch_size=8, eval_every=2, checkpoint_every=50, log_every=2, device="cpu",
                      best_metric="val_macro_f1", early_stopping=2)
    script = [0.5, 0.7, 0.6, 0.65, 0.9, 0.95]
    assert fit(model, ScriptedObjective(SequenceClassification(data, data, 8, 1, 0, 0), script[:3]), Settings(loop),
               tmp_path).steps == 6
    longer = loop.model_copy(update={"max_steps": 100})
    result = fit(tuned(workspace / "gpt", "full"), ScriptedObjective(SequenceClassification(data, data, 8, 1, 0, 0),
                                                                     script[3:]), Settings(longer), tmp_path,
                 resume=True)
    assert result.steps == 8
    assert json.loads((tmp_path / "best.json").read_text()) == {"step": 4, "metric": "val_macro_f1", "value": 0.7}
