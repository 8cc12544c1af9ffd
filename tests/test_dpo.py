"""Preference losses against TRL itself: the same policy, reference and batch give the same loss and rewards."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import chat_tune_words, kill_after_logged_steps, tiny_decoder_base
from datasets import Dataset
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast

from lmlab.cli import main
from lmlab.datasets.chat import check_reply, preference_splits
from lmlab.models import load_model
from lmlab.models.gpt import GPT, GPTConfig
from lmlab.models.hf import export_gpt2
from lmlab.runs import open_run
from lmlab.train.checkpoint import list_checkpoints
from lmlab.tune.preference import answer_logprobs, preference_loss

PAIRS = {"prompt": ["hello world,", "the cat sat", "how are"],
         "chosen": [" how are you?", " on the mat.", " you? thank you"],
         "rejected": [" thank you!", " I am fine", " the cat"]}


@pytest.fixture(scope="module")
def hf_tokenizer() -> PreTrainedTokenizerFast:
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    texts = [p + c + r for p, c, r in zip(*PAIRS.values(), strict=True)] * 3
    backend.train_from_iterator(texts, trainer=trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>", pad_token="<|endoftext|>")


def policy_and_reference(tmp_path, vocab_size: int) -> tuple[GPT, GPT, GPT2LMHeadModel, GPT2LMHeadModel]:
    """Two lmlab GPTs a little apart and their transformers twins."""
    torch.manual_seed(0)
    reference = GPT(GPTConfig(vocab_size=vocab_size, block_size=32, n_layer=2, n_head=2, n_embd=32)).eval()
    policy = copy.deepcopy(reference)
    with torch.no_grad():
        for param in policy.parameters():
            param.add_(0.05 * torch.randn_like(param))
    twins = []
    for name, model in (("policy", policy), ("reference", reference)):
        export_gpt2(model, tmp_path / name)
        twins.append(GPT2LMHeadModel.from_pretrained(tmp_path / name, attn_implementation="sdpa").eval())
    return policy, reference, *twins


def lmlab_output(kind, policy, reference, input_ids, attention_mask, answer_mask, beta, **extra):
    """lmlab's loss on a [chosen rows; rejected rows] batch, as TRL's collators lay one out."""
    with torch.no_grad():
        logprobs = answer_logprobs(policy, input_ids, attention_mask, answer_mask)
        reference_logprobs = answer_logprobs(reference, input_ids, attention_mask, answer_mask)
    half = len(input_ids) // 2
    chosen, rejected = (type(logprobs)(logprobs.total[rows], logprobs.tokens[rows])
                        for rows in (slice(0, half), slice(half, None)))
    return preference_loss(kind, chosen, rejected, reference_logprobs.total[:half], reference_logprobs.total[half:],
                           beta, **extra)


def close(ours: float, theirs: float) -> bool:
    return abs(ours - theirs) <= 1e-5 * max(abs(theirs), 1e-3)


@pytest.mark.parametrize(("kind", "sft_weight"), [("sigmoid", 0.0), ("ipo", 0.0), ("sigmoid", 0.5)])
def test_dpo_loss_rewards_and_margin_equal_trl_dpo_trainer(tmp_path, hf_tokenizer, kind, sft_weight):
    from trl import DPOConfig, DPOTrainer

    policy, reference, hf_policy, hf_reference = policy_and_reference(tmp_path, len(hf_tokenizer))
    losses = {"loss_type": [kind, "sft"], "loss_weights": [1.0, sft_weight]} if sft_weight else {"loss_type": [kind]}
    args = DPOConfig(output_dir=str(tmp_path / "trl"), per_device_train_batch_size=3, max_steps=1, beta=0.1,
                     **losses, bf16=False, gradient_checkpointing=False, report_to="none",
                     save_strategy="no", use_cpu=True)
    trainer = DPOTrainer(model=hf_policy, ref_model=hf_reference, args=args, train_dataset=Dataset.from_dict(PAIRS),
                         processing_class=hf_tokenizer)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
    trainer.model.eval()
    with torch.no_grad():
        trl_loss = float(trainer.compute_loss(trainer.model, batch))
    trl = {name: values[-1] for name, values in trainer._metrics["eval"].items()}

    ours = lmlab_output(kind, policy, reference, batch["input_ids"], batch["attention_mask"],
                        batch["completion_mask"], beta=0.1, sft_weight=sft_weight)
    figures = ours.figures()
    assert close(float(ours.loss), trl_loss), (float(ours.loss), trl_loss)
    assert close(figures["reward_chosen"], trl["rewards/chosen"])
    assert close(figures["reward_rejected"], trl["rewards/rejected"])
    assert close(figures["margin"], trl["rewards/margins"])
    assert figures["preference_accuracy"] == pytest.approx(trl["rewards/accuracies"])


def test_a_pair_packed_on_one_row_gives_the_log_probabilities_of_its_two_rows():
    from lmlab.models.llama import Llama, LlamaConfig
    from lmlab.tune.tasks.dpo import Pairs, pair_logprobs, pair_rows, shared_prompt_rows

    torch.manual_seed(0)
    model = Llama(LlamaConfig(vocab_size=50, block_size=64, n_layer=2, n_head=4, n_kv_head=2, n_embd=32)).eval()
    pairs = Pairs([], [], [], [], [])
    for prompt, chosen, rejected in [([3, 4, 5, 6], [7, 8, 9], [10, 11]), ([12, 13], [14], [15, 16, 17, 18]),
                                     ([19, 20, 21, 22, 23, 24, 25], [26, 27], [28, 29, 30])]:
        for side, answer in (("chosen", chosen), ("rejected", rejected)):
            getattr(pairs, side).append(prompt + answer + [2, 1])  # the end of turn is learned, what follows not
            getattr(pairs, f"{side}_masks").append([0] * len(prompt) + [1] * (len(answer) + 1) + [0])
        pairs.records.append({})
    with torch.no_grad():
        for packed, alone in zip(pair_logprobs(model, shared_prompt_rows(pairs, [0, 1, 2], 0)),
                                 pair_logprobs(model, pair_rows(pairs, [0, 1, 2], 0)), strict=True):
            assert torch.equal(packed.tokens, alone.tokens)
            assert (packed.total - alone.total).abs().max() <= 1e-5 * alone.total.abs().max()
    rows = shared_prompt_rows(pairs, [1], 0)
    assert rows["input_ids"].tolist() == [[12, 13, 14, 2, 1, 15, 16, 17, 18, 2, 1]]
    assert rows["branch_ids"].tolist() == [[0, 0, 1, 1, 1, 2, 2, 2, 2, 2, 2]]


def test_simpo_equals_trl_cpo_trainer_without_a_reference(tmp_path, hf_tokenizer):
    from trl.experimental.cpo import CPOConfig, CPOTrainer

    policy, reference, hf_policy, _ = policy_and_reference(tmp_path, len(hf_tokenizer))
    args = CPOConfig(output_dir=str(tmp_path / "trl"), per_device_train_batch_size=3, max_steps=1, beta=2.0,
                     loss_type="simpo", simpo_gamma=0.5, cpo_alpha=0.0, bf16=False, report_to="none",
                     save_strategy="no", use_cpu=True)
    trainer = CPOTrainer(model=hf_policy, args=args, train_dataset=Dataset.from_dict(PAIRS),
                         processing_class=hf_tokenizer)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
    trainer.model.eval()
    with torch.no_grad():
        trl_loss = float(trainer.compute_loss(trainer.model, batch))
    trl = {name: values[-1] for name, values in trainer._stored_metrics["train"].items()}

    width = max(batch["chosen_input_ids"].size(1), batch["rejected_input_ids"].size(1))
    rows = {key: torch.cat([torch.nn.functional.pad(batch[f"{side}_{key}"],
                                                    (0, width - batch[f"{side}_{key}"].size(1)),
                                                    value=-100 if key == "labels" else 0)
                            for side in ("chosen", "rejected")])
            for key in ("input_ids", "attention_mask", "labels")}
    ours = lmlab_output("simpo", policy, reference, rows["input_ids"], rows["attention_mask"],
                        (rows["labels"] != -100).long(), beta=2.0, simpo_gamma=0.5)
    assert close(float(ours.loss), trl_loss), (float(ours.loss), trl_loss)
    assert close(ours.figures()["reward_chosen"], trl["rewards/chosen"])
    assert close(ours.figures()["margin"], trl["rewards/margins"])


def test_a_policy_equal_to_its_reference_has_dpo_loss_ln2_and_zero_margin():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50, block_size=16, n_layer=1, n_head=2, n_embd=16)).eval()
    ids = torch.randint(0, 50, (4, 10))
    mask = torch.ones_like(ids)
    answer = torch.zeros_like(ids)
    answer[:, 5:] = 1
    out = lmlab_output("sigmoid", model, model, ids, mask, answer, beta=0.1)
    assert float(out.loss) == pytest.approx(torch.log(torch.tensor(2.0)).item(), abs=1e-6)
    assert out.figures()["margin"] == 0.0


# ---- whole runs --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    return tiny_decoder_base(tmp_path_factory.mktemp("dpo"))


def dpo_words(base, run_dir, steps, *extra, data="preferences-tasks"):
    return chat_tune_words(base, "dpo", data, run_dir, steps, "optimizer.lr=1e-2", *extra)


@pytest.fixture(scope="module")
def same_pairs(tmp_path_factory):
    """32 task pairs as the train, validation and test split alike: what a few steps can learn, measured.
    (That held-out pairs are learned too takes longer runs: `lmlab quickstart chat` shows it.)"""
    folder = tmp_path_factory.mktemp("pairs")
    lines = "".join(json.dumps(pair, ensure_ascii=False) + "\n" for pair in preference_splits("preferences-tasks")
                    ["train"][:32])
    for split in ("train", "validation", "test"):
        (folder / f"{split}.jsonl").write_text(lines, encoding="utf-8")
    return folder


@pytest.mark.parametrize("loss", ["sigmoid", "ipo", "simpo", "orpo"])
def test_each_preference_loss_raises_preference_accuracy_and_margin(base_run, same_pairs, tmp_path, loss):
    run_dir = tmp_path / loss
    beta = {"simpo": 2.0}.get(loss, 0.1)
    assert main(["tune", *dpo_words(base_run, run_dir, 12, f"preference.loss={loss}", f"preference.beta={beta}",
                                    "limit_eval=32", data=str(same_pairs))]) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    if loss not in ("simpo", "orpo"):  # against the reference: the base itself has margin 0
        assert summary["base_test_margin"] == 0 and summary["base_test_preference_accuracy"] == 0
    assert summary["test_margin"] > summary["base_test_margin"]
    assert summary["test_preference_accuracy"] > max(0.5, summary["base_test_preference_accuracy"])
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert all({"margin", "reward_chosen", "reward_rejected", "preference_accuracy"} <= set(r)
               for r in records if "loss" in r)
    assert open_run(run_dir).family_class.kind == "decoder"


def test_sampled_rejected_answers_are_the_models_own_wrong_replies(base_run):
    from lmlab.generate import GenerationParams
    from lmlab.tune.runner import chat_ready
    from lmlab.tune.tasks.chat import ChatContext, generate_replies
    from lmlab.tune.tasks.dpo import own_wrong_answers

    model, tokenizer, template = chat_ready(open_run(base_run))
    end = template.end_of_turn_id(tokenizer)
    context = ChatContext(tokenizer, template, 96, end, end, None, None, False)  # type: ignore[arg-type]
    pairs = preference_splits("preferences-tasks")["train"][:12]
    unchecked = {key: value for key, value in pairs[0].items() if key != "answer"}  # nothing to check it by
    records = [unchecked, *pairs[1:]]
    replaced = own_wrong_answers(records, model, context, samples=3, seed=5)
    assert replaced == own_wrong_answers(records, model, context, samples=3, seed=5)  # seeded
    assert replaced[0] is unchecked
    samples = generate_replies(model, [r for r in pairs[1:] for _ in range(3)], context,
                               GenerationParams(max_new_tokens=24, temperature=1.0, seed=5))
    texts = [tokenizer.decode(reply, skip_special_tokens=True).strip() for reply in samples]
    for at, (before, after) in enumerate(zip(pairs[1:], replaced[1:], strict=True)):
        mine = [t for t in texts[3 * at:3 * at + 3] if t and not check_reply(before, t)]
        if mine:  # the first of its own replies the checker rejects, everything else as it was
            assert after == {**before, "rejected": mine[0], "rejected_by": "own sample"}
        else:
            assert after is before
    assert sum(after.get("rejected_by") == "own sample" for after in replaced) >= 6  # a tiny model is mostly wrong


def test_dpo_on_sampled_rejected_answers_trains_on_them_and_keeps_the_held_out_pairs(base_run, same_pairs, tmp_path):
    figures = {}
    for rejected in ("given", "sampled"):
        run_dir = tmp_path / rejected
        assert main(["tune", *dpo_words(base_run, run_dir, 2, f"preference.rejected={rejected}", "preference.samples=2",
                                        "preference.loss=simpo", "preference.beta=2", "limit_eval=8",
                                        data=str(same_pairs))]) == 0
        summary = json.loads((run_dir / "summary.json").read_text())
        first = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[0])
        figures[rejected] = ({k: v for k, v in summary.items() if k.startswith("base_test_")}, first["reward_rejected"])
    assert figures["sampled"][0] == figures["given"][0]  # the same held-out pairs, scored on the same base
    assert figures["sampled"][1] != figures["given"][1]  # but other rejected answers to train on


def test_dpo_resumes_bit_exactly_after_sigkill(base_run, tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert main(["tune", *dpo_words(base_run, straight, 8, "method.method=lora")]) == 0
    kill_after_logged_steps([sys.executable, "-m", "lmlab.cli", "tune",
                             *dpo_words(base_run, killed, 8, "method.method=lora")],
                            killed, 4, {**os.environ, "PYTHONHASHSEED": "0"})
    assert list_checkpoints(killed) and not (killed / "summary.json").exists()
    resumed = subprocess.run([sys.executable, "-m", "lmlab.cli", "tune", str(killed), "--resume"],
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    final, expected = load_model(killed).state_dict(), load_model(straight).state_dict()
    assert all(torch.equal(final[name], expected[name]) for name in expected)
    lines = [(run / "metrics.jsonl").read_text().splitlines() for run in (killed, straight)]
    assert [json.loads(a).get("margin") for a in lines[0]] == [json.loads(b).get("margin") for b in lines[1]]
