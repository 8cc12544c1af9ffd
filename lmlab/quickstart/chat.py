"""`lmlab quickstart chat`: from raw text to a small assistant, in English and Chinese, in about ten minutes.

    1 data       Shakespeare and People's Daily to pretrain on; the verifiable tasks (arithmetic, counting,
                 sorting, reversing, units, dates; both languages) to instruct and align on
    2 pretrain   a LLaMA (GQA, RoPE, SwiGLU) of about 1.8M parameters, on the CPU
    3 sft        instruction tuning: the loss on the assistant's tokens only, conversations packed
    4 reward     a reward model from the SFT model, and its pairwise accuracy on held-out pairs (rejected:
                 a plausible wrong answer, or the answer to another question)
    5 dpo        the SFT model taught to prefer right answers to plausible wrong ones
    6 grpo       the SFT model sampling groups of replies, the right ones reinforced, its KL to SFT reported
    7 compare    every stage's model on the same held-out tasks and pairs: exact match, preference
                 accuracy, the reward model's mean score of its replies
    8 chat       a few turns in English and Chinese
    9 report     the curves of every stage, and what to try next

The recipes (lmlab/recipes/chat-*.yaml) are the configs of each stage, as data: rerun any stage with
``lmlab train`` or ``lmlab tune`` and your own overrides.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from lmlab.data.pipeline import DataConfig
from lmlab.data.prepare import PrepareConfig, prepare_corpus
from lmlab.datasets import load_corpus
from lmlab.datasets.chat import conversation_splits, preference_splits
from lmlab.generate import GenerationParams
from lmlab.modes import evaluating
from lmlab.pipelines.chat import ChatModel, Conversation, checked_replies
from lmlab.report import write_report
from lmlab.runs import open_run
from lmlab.tokenizers import TokenizerConfig
from lmlab.train import read_train_config, train_run
from lmlab.tune.preference import answer_logprobs
from lmlab.tune.runner import read_tune_config, tune
from lmlab.tune.tasks.chat import ChatContext
from lmlab.tune.tasks.dpo import encode_pairs, pair_rows, sides
from lmlab.tune.tasks.reward import RewardScorer

RECIPES = resources.files("lmlab") / "recipes"
STAGES = ("llama", "sft", "reward", "dpo", "grpo")  # run folders under OUT, one recipe each (chat-NAME.yaml)
CHAT_TURNS = [  # (language, message): two verifiable ones and one the tasks never asked
    ("en", "What is 17 + 25?"), ("en", "Reverse the list: cat, dog, moon"),
    ("zh", "把这些数从小到大排列：9、3、7"), ("zh", "你好！"),
]


@dataclass
class ChatQuickstartOptions:
    out: Path = Path("runs/quickstart-chat")
    steps: int | None = None  # every stage's training steps (default: each recipe's), for a quick tour
    corpora: tuple[Path, ...] = ()  # your own corpus files to pretrain on instead of the two named corpora
    held_out: int = 200  # the test tasks and pairs each stage, and the comparison, score


def _stage(console: Console, number: int, title: str) -> None:
    console.rule(f"[bold cyan]{number}. {title}", align="left")


def _steps(options: ChatQuickstartOptions, evaluations: int = 2) -> list[str]:
    if options.steps is None:
        return []
    every = max(1, options.steps // evaluations)
    return [f"train.max_steps={options.steps}", f"train.eval_every={every}", f"train.checkpoint_every={every}",
            "schedule.warmup_steps=0"]


def _tune(options: ChatQuickstartOptions, stage: str, base: Path, console: Console) -> dict[str, Any]:
    # a quick tour reads only the records its few steps reach (DPO's reference pass reads every one)
    reached = [] if options.steps is None else [f"limit_train={max(256, 32 * options.steps)}"]
    cfg = read_tune_config(RECIPES / f"chat-{stage}.yaml", [f"base={base}", f"run_dir={options.out / stage}",
                                                            f"limit_eval={options.held_out}", *_steps(options),
                                                            *reached])
    return tune(cfg, console=console)


def _clear_previous(options: ChatQuickstartOptions, console: Console) -> None:
    """Remove the folders an earlier `quickstart chat` wrote in `options.out` (only those, and only ours)."""
    ours = [options.out / "data", *(options.out / stage for stage in STAGES)]
    previous = [folder for folder in ours if (folder / "config.yaml").exists() or (folder / "meta.json").exists()]
    if previous:
        console.print(f"  replacing the previous chat quickstart in {options.out}/", highlight=False)
    for folder in previous:
        shutil.rmtree(folder)


def held_out_figures(run_dir: Path, prompts: list[dict[str, Any]], pairs: list[dict[str, Any]],
                     scorer: RewardScorer) -> dict[str, float]:
    """One model on the same held-out items: the exact match of its greedy replies, the reward model's mean
    score of them, and the share of pairs whose chosen answer it finds likelier per token than the rejected."""
    chat = ChatModel.from_run(open_run(run_dir), "cpu")
    replies, right = checked_replies(chat, prompts)
    context = ChatContext(chat.tokenizer, chat.template, chat.model.config.block_size, chat.end_id, chat.end_id,
                          None, None, False)  # type: ignore[arg-type]
    encoded = encode_pairs(pairs, context)
    preferred = 0
    with torch.no_grad(), evaluating(chat.model):
        for start in range(0, len(encoded.records), 32):
            batch = pair_rows(encoded, range(start, min(start + 32, len(encoded.records))), chat.end_id)
            chosen, rejected = sides(answer_logprobs(chat.model, **batch))
            preferred += int((chosen.mean > rejected.mean).sum())
    return {
        "exact_match": sum(right) / len(prompts),
        "preference_accuracy": preferred / len(encoded.records),
        "mean_reward": float(scorer([r["messages"][:-1] for r in prompts], replies).mean()),
    }


def pairwise_accuracy(scorer: RewardScorer, pairs: list[dict[str, Any]]) -> dict[str, float]:
    """The share of pairs the reward model scores chosen above rejected, for each way the rejected was made."""
    prompts = [pair["prompt"] for pair in pairs]
    right = scorer(prompts, [p["chosen"] for p in pairs]) > scorer(prompts, [p["rejected"] for p in pairs])
    groups: dict[str, list[bool]] = {}
    for pair, correct in zip(pairs, right.tolist(), strict=True):
        groups.setdefault(pair["rejected_by"], []).append(correct)
    return {name: sum(group) / len(group) for name, group in groups.items()}


def _base_as_chat_run(options: ChatQuickstartOptions) -> Path:
    """The pretrained model with the chat tokens and template, untrained on them: SFT's starting point, scored."""
    from lmlab.models import save_model
    from lmlab.tune.runner import chat_ready

    model, tokenizer, template = chat_ready(open_run(options.out / "llama"))
    folder = options.out / "llama" / "as-chat"
    save_model(model, folder)
    tokenizer.save(folder / "tokenizer.json")
    template.save(folder)
    return folder


def run_chat_quickstart(options: ChatQuickstartOptions, console: Console | None = None) -> dict[str, dict[str, float]]:
    """Run every stage; return the held-out figures of each model."""
    console = console or Console()
    started = time.perf_counter()
    _clear_previous(options, console)

    _stage(console, 1, "Data: two corpora to pretrain on, verifiable tasks to instruct and align on")
    named = [] if options.corpora else [load_corpus(name) for name in ("shakespeare", "peoples-daily")]
    paths = list(options.corpora) or [corpus.path for corpus in named]
    splits, pairs = conversation_splits("tasks-large"), preference_splits("preferences-tasks")
    pretraining = ", ".join(corpus.name for corpus in named) if named else ", ".join(map(str, paths))
    console.print(f"  pretraining on {pretraining}; tasks: {len(splits['train']):,} train, "
                  f"{len(splits['validation']):,} validation, {len(splits['test']):,} test conversations "
                  f"(English and Chinese); {len(pairs['train']):,} preference pairs to train on", highlight=False)
    prepared = prepare_corpus(paths, options.out / "data", PrepareConfig(
        data=DataConfig(dedup="near"), tokenizer=TokenizerConfig(kind="bpe", vocab_size=4096, split_digits=True),
        val_fraction=0.05, seed=2))
    console.print(f"  byte-level BPE of {prepared.tokenizer.vocab_size:,} tokens; "
                  f"{prepared.meta.splits['train'].tokens:,} training tokens -> {options.out / 'data'}/")

    _stage(console, 2, "Pretrain: a small LLaMA on the CPU")
    pretrained = train_run(read_train_config(RECIPES / "chat-llama.yaml", [
        f"run_dir={options.out / 'llama'}", f"data={options.out / 'data'}", *_steps(options)]), console=console)
    console.print(f"  {open_run(pretrained.run_dir).describe()}, {open_run(pretrained.run_dir).parameters():,} "
                  f"parameters, {pretrained.tokens_seen:,} tokens in {pretrained.seconds:.0f}s", highlight=False)

    _stage(console, 3, "SFT: instruction tuning, the loss on the assistant's tokens only")
    sft = _tune(options, "sft", pretrained.run_dir, console)
    console.print(f"  held-out exact match: {sft['base_test_exact_match']:.3f} before, {sft['test_exact_match']:.3f} "
                  "after", highlight=False)

    _stage(console, 4, "Reward model: the SFT model with a scalar head, chosen above rejected")
    reward = _tune(options, "reward", options.out / "sft", console)
    scorer = RewardScorer(str(options.out / "reward"))
    by_kind = pairwise_accuracy(scorer, preference_splits("preferences-tasks-mixed")["test"][:options.held_out])
    console.print(f"  held-out pairwise accuracy {reward['test_accuracy']:.3f} (chance: 0.5), reward margin "
                  f"{reward['test_reward_margin']:.2f}; " + ", ".join(
                      f"{accuracy:.3f} against {rejected_by} answers" for rejected_by, accuracy in by_kind.items()),
                  highlight=False)

    _stage(console, 5, "DPO: prefer the right answer, relative to the SFT model")
    dpo = _tune(options, "dpo", options.out / "sft", console)
    console.print(f"  held-out preference accuracy {dpo['test_preference_accuracy']:.3f}, margin "
                  f"{dpo['test_margin']:.3f} (both 0 for the SFT model it starts from)", highlight=False)

    _stage(console, 6, "GRPO: sample 8 replies per prompt, reinforce the right ones")
    grpo = _tune(options, "grpo", options.out / "sft", console)
    console.print(f"  held-out exact match {grpo['base_test_exact_match']:.3f} -> {grpo['test_exact_match']:.3f}, "
                  f"KL to the SFT model {grpo['test_kl']:.4f} per token", highlight=False)

    _stage(console, 7, f"Compare: every model on the same {options.held_out} held-out tasks and pairs")
    models = {"pretrained": _base_as_chat_run(options), "SFT": options.out / "sft",
              "SFT + DPO": options.out / "dpo", "SFT + GRPO": options.out / "grpo"}
    figures = {name: held_out_figures(path, splits["test"][:options.held_out], pairs["test"][:options.held_out], scorer)
               for name, path in models.items()}
    table = Table("model", "exact match", "preference accuracy", "mean reward (reward model)")
    for name, row in figures.items():
        table.add_row(name, f"{row['exact_match']:.3f}", f"{row['preference_accuracy']:.3f}",
                      f"{row['mean_reward']:+.2f}")
    console.print(table)
    console.print("  preference accuracy: pairs whose right answer the model finds likelier per token than the "
                  "wrong one", highlight=False)

    _stage(console, 8, "Chat: a few turns with the GRPO model (greedy)")
    conversation = Conversation(ChatModel.from_run(open_run(options.out / "grpo"), "cpu"),
                                params=GenerationParams(temperature=0, max_new_tokens=24))
    for language, message in CHAT_TURNS:
        conversation.reset()
        reply = "".join(conversation.send(message))
        console.print(f"  [{language}] you> {message}\n       assistant> {reply}", highlight=False, markup=False)

    _stage(console, 9, "Report")
    for stage in STAGES:
        write_report(options.out / stage)
    console.print(f"  {options.out}/<stage>/report.html for each of {', '.join(STAGES)}: loss, reward, margin and "
                  "KL curves", highlight=False)
    console.print(f"\nDone in {time.perf_counter() - started:.0f}s. What to try next:")
    console.print(f"  lmlab chat {options.out / 'grpo'} --system \"Answer briefly.\"")
    console.print(f"  lmlab tune lmlab/recipes/chat-sft.yaml base={options.out / 'llama'} run_dir=runs/sft-lora "
                  "method.method=lora")
    console.print(f"  lmlab tune lmlab/recipes/chat-dpo.yaml base={options.out / 'sft'} run_dir=runs/simpo "
                  "preference.loss=simpo preference.beta=2")
    console.print(f"  lmlab tune lmlab/recipes/chat-grpo.yaml base={options.out / 'sft'} run_dir=runs/grpo-rm "
                  f"grpo.reward={options.out / 'reward'}")
    console.print(f"  lmlab eval answers {options.out / 'sft'} {options.out / 'dpo'} {options.out / 'grpo'}   # all "
                  "held-out tasks, gained and lost against SFT, McNemar's p")
    console.print(f"  lmlab export {options.out / 'grpo'} runs/hf-chat   # transformers' apply_chat_template works")
    return figures
