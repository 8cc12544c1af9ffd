"""DPO training speed: lmlab's preference objective beside TRL's DPOTrainer, same model, data and batch, CPU.

The model is a LLaMA of the chat quickstart's shape (4 x 128, GQA, vocabulary of its BPE plus the chat
tokens), random weights, its reference a frozen copy; the data are the verifiable tasks' preference
pairs rendered with ChatML (the same template in both: TRL reads it from the exported tokenizer).
Both take AdamW steps (lr 1e-4, no weight decay) on batches of the same number of pairs, float32,
dropout off. lmlab computes the reference's log-probabilities once before training (its design, so
that a resumed run reads the same numbers); that time is counted in its total. TRL runs twice: with
the reference model computing each batch (its default) and with ``precompute_ref_log_probs=True``;
the ratio is against the faster of the two. Each side trains `--steps` steps after one warm-up run.

    .venv/bin/python benchmarks/dpo_speed.py [--steps 40] [--batch 16]

Last line: {"benchmark": "dpo_speed", "ratio": lmlab steps/s over TRL's best, "target": 1.5, ...}
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch

from lmlab.datasets.chat import preference_splits
from lmlab.models.hf_llama import export_llama
from lmlab.models.llama import Llama, LlamaConfig
from lmlab.tokenizers import TokenizerConfig, train_tokenizer
from lmlab.tokenizers.chat import ChatTemplate, with_chat_tokens
from lmlab.train.loop import LoopConfig
from lmlab.tune.tasks.chat import ChatContext
from lmlab.tune.tasks.dpo import PreferenceConfig, PreferenceObjective, encode_pairs

TARGET = 1.5
LR = 1e-4


def lmlab_steps_per_s(model: torch.nn.Module, pairs: list[dict], tokenizer, template: ChatTemplate, steps: int,
                      batch: int) -> float:
    reference = copy.deepcopy(model).eval().requires_grad_(False)
    settings = SimpleNamespace(train=LoopConfig(batch_size=batch, grad_accum=1, seed=0))
    end = template.end_of_turn_id(tokenizer)
    context = ChatContext(tokenizer, template, model.config.block_size, end, end, reference, settings,  # type: ignore[arg-type]
                          model.packs_documents)
    train = encode_pairs(pairs, context)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.0, foreach=True)
    model.train()
    start = time.perf_counter()
    objective = PreferenceObjective(train, encode_pairs(pairs[:batch], context), context, PreferenceConfig())
    for step in range(steps):
        loss = objective.loss(model, objective.training_batch(step, 0))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return steps / (time.perf_counter() - start)


def trl_steps_per_s(folder: Path, pairs: list[dict], steps: int, batch: int, precompute: bool) -> float:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    policy = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="sdpa")
    reference = None if precompute else AutoModelForCausalLM.from_pretrained(folder, attn_implementation="sdpa")
    data = Dataset.from_list([{"prompt": p["prompt"], "chosen": [{"role": "assistant", "content": p["chosen"]}],
                               "rejected": [{"role": "assistant", "content": p["rejected"]}]} for p in pairs])
    with tempfile.TemporaryDirectory() as out:
        args = DPOConfig(output_dir=out, per_device_train_batch_size=batch, max_steps=steps, learning_rate=LR,
                         weight_decay=0.0, lr_scheduler_type="constant", warmup_steps=0, beta=0.1, bf16=False,
                         gradient_checkpointing=False, use_cpu=True, report_to="none", save_strategy="no",
                         logging_steps=steps, disable_dropout=True, max_length=256, dataloader_num_workers=0,
                         precompute_ref_log_probs=precompute)
        trainer = DPOTrainer(model=policy, ref_model=reference, args=args, train_dataset=data,
                             processing_class=tokenizer)
        start = time.perf_counter()
        trainer.train()
        return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=16, help="pairs per step")
    args = parser.parse_args()
    torch.manual_seed(0)
    train = preference_splits("preferences-tasks")["train"]
    pairs = train[: args.steps * args.batch]
    texts = [m["content"] for p in train[:2000] for m in p["prompt"]] + [p["chosen"] for p in train[:2000]]
    tokenizer = with_chat_tokens(train_tokenizer(texts, TokenizerConfig(kind="bpe", vocab_size=1000, min_frequency=2)))
    template = ChatTemplate()
    model = Llama(LlamaConfig(vocab_size=tokenizer.vocab_size, block_size=128, n_layer=4, n_head=4, n_kv_head=2,
                              n_embd=128))
    with tempfile.TemporaryDirectory() as folder:
        run, hf = Path(folder) / "run", Path(folder) / "hf"
        run.mkdir()
        tokenizer.save(run / "tokenizer.json")
        template.save(run)  # beside the tokenizer: the export writes it into tokenizer_config.json for TRL
        export_llama(model, hf, tokenizer_json=run / "tokenizer.json")
        # warm-up: first-call allocations on both sides
        lmlab_steps_per_s(copy.deepcopy(model), pairs, tokenizer, template, 3, args.batch)
        trl_steps_per_s(hf, pairs, 3, args.batch, precompute=False)
        ours = lmlab_steps_per_s(copy.deepcopy(model), pairs, tokenizer, template, args.steps, args.batch)
        theirs = {"reference_model": trl_steps_per_s(hf, pairs, args.steps, args.batch, False),
                  "precomputed": trl_steps_per_s(hf, pairs, args.steps, args.batch, True)}
    best = max(theirs.values())
    print(f"lmlab {ours:.2f} steps/s; TRL {theirs['reference_model']:.2f} (reference model), "
          f"{theirs['precomputed']:.2f} (precomputed reference)")
    print(json.dumps({
        "benchmark": "dpo_speed", "ratio": round(ours / best, 3), "target": TARGET, "lmlab_steps_per_s": round(ours, 3),
        "trl_steps_per_s": {name: round(speed, 3) for name, speed in theirs.items()}, "steps": args.steps,
        "pairs_per_step": args.batch, "parameters": sum(p.numel() for p in model.parameters()),
        "torch_threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()
