"""Multiple-choice evaluation speed: lmlab's harness against lm-evaluation-harness `--model hf`, same model.

One GPT (6 layers x 384 wide, block 256, random init, output layer of 4096 entries, of which a
byte-level BPE trained on the synthetic docs uses the first few hundred) is scored on one zero-shot
multiple-choice task: 200 synthetic docs of 4 choices, contexts of about 100-200 tokens, choices of
1-12 words. Both sides read the same JSONL file:

- lm-eval 0.4.13: ``HFLM`` on the exported GPT-2 directory (float32, cpu, batch_size 16, its
  fastest fair setting here), ``simple_evaluate`` with ``TaskManager(include_defaults=False)``;
- lmlab: ``evaluate_tasks`` with ``CausalLanguageModel`` on the lmlab model, its defaults.

Each side's whole evaluation call is timed (wall clock, after imports and model loading), once;
both must give the same acc. "ratio" is lm-eval seconds over lmlab seconds.
The last line printed is one JSON object; the script exits 0 whether or not the target is met.

    .venv/bin/python benchmarks/harness_speed.py [--docs 200] [--choices 4] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

TARGET_RATIO = 3.0
VOCAB_SIZE = 4096
# Common English words; the contexts are random strings of them.
COMMON_WORDS = """
the of and to in is was for on that with as by at from his her they were which this be had not are
but first one their new after also who two have time years can year into during only other more
river city school team war game music church house party film album station world state line north
south village people season work family name early later number called since under
"""
WORDS = COMMON_WORDS.split()


def synthetic_docs(count: int, choices: int, seed: int = 0) -> list[dict]:
    """Docs of the ARC/HellaSwag shape: a long context, `choices` endings of different lengths, a gold index."""
    rng = random.Random(seed)

    def sentence(length: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(length))

    return [{"question": sentence(rng.randint(90, 170)).capitalize() + ".\nAnswer:",
             "choices": [sentence(rng.randint(1, 12)) for _ in range(choices)],
             "label": rng.randrange(choices)} for _ in range(count)]


LM_EVAL_TASK = """task: speed_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
  cache_dir: {cache}
output_type: multiple_choice
test_split: test
doc_to_text: "{{{{question}}}}"
doc_to_target: label
doc_to_choice: "{{{{choices}}}}"
metric_list: [{{metric: acc}}]
metadata: {{version: 1.0}}
"""
LMLAB_TASK = """task: speed_mc
output_type: multiple_choice
data: {data}
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: label
metrics: [acc]
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=200)
    parser.add_argument("--choices", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=16, help="lm-eval's HFLM batch size")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # lm-eval reads these when `datasets` and `transformers` are imported: set first.
        os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                          HF_HOME=str(root / "hf_home"))
        import torch
        from lm_eval import simple_evaluate
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager

        from lmlab.evaluate.harness import evaluate_tasks
        from lmlab.models.gpt import GPT, GPTConfig
        from lmlab.models.hf import export_gpt2
        from lmlab.models.language_model import CausalLanguageModel
        from lmlab.tokenizers import TokenizerConfig, train_tokenizer

        docs = synthetic_docs(args.docs, args.choices)
        data = root / "speed_mc.jsonl"
        data.write_text("".join(json.dumps(doc) + "\n" for doc in docs), encoding="utf-8")
        (root / "tasks").mkdir()
        (root / "tasks" / "speed_mc.yaml").write_text(LM_EVAL_TASK.format(data=data, cache=root / "datasets"),
                                                      encoding="utf-8")
        (root / "speed_mc.yaml").write_text(LMLAB_TASK.format(data=data.name), encoding="utf-8")

        texts = [doc["question"] + " " + " ".join(doc["choices"]) for doc in docs]
        tokenizer = train_tokenizer(texts, TokenizerConfig(kind="bpe", vocab_size=VOCAB_SIZE))
        tokenizer.save(root / "tokenizer.json")
        torch.manual_seed(0)
        # A realistic output layer even though the synthetic text needs few tokens: the softmax costs as it would.
        config = GPTConfig(vocab_size=max(VOCAB_SIZE, tokenizer.vocab_size), block_size=256, n_layer=6, n_head=6,
                           n_embd=384)
        model = GPT(config).eval()
        export_gpt2(model, root / "hf", root / "tokenizer.json")
        lengths = [len(tokenizer.encode(doc["question"])) for doc in docs]
        print(f"model: {config.n_layer}x{config.n_embd}, vocab {config.vocab_size} (tokenizer {tokenizer.vocab_size}), "
              f"block {config.block_size}; "
              f"{len(docs)} docs x {args.choices} choices, context {min(lengths)}-{max(lengths)} tokens "
              f"(mean {sum(lengths) / len(lengths):.0f}); torch threads {torch.get_num_threads()}", file=sys.stderr)

        lm_eval_model = HFLM(pretrained=str(root / "hf"), dtype="float32", device="cpu", batch_size=args.batch_size)
        start = time.perf_counter()
        theirs = simple_evaluate(model=lm_eval_model, tasks=["speed_mc"], bootstrap_iters=0,
                                 task_manager=TaskManager(include_path=str(root / "tasks"), include_defaults=False))
        lm_eval_s = time.perf_counter() - start
        acc_lm_eval = theirs["results"]["speed_mc"]["acc,none"]
        print(f"lm-eval (HFLM, batch {args.batch_size}): {lm_eval_s:.2f} s, acc {acc_lm_eval:.4f}", file=sys.stderr)

        lm = CausalLanguageModel(model, tokenizer)
        start = time.perf_counter()
        ours = evaluate_tasks(lm, [root / "speed_mc.yaml"])
        lmlab_s = time.perf_counter() - start
        acc_lmlab = ours["speed_mc"].metrics["acc"]
        print(f"lmlab: {lmlab_s:.2f} s, acc {acc_lmlab:.4f}", file=sys.stderr)
        if acc_lmlab != acc_lm_eval:
            print("WARNING: the two harnesses disagree on acc", file=sys.stderr)

    print(json.dumps({
        "benchmark": "harness_speed", "ratio": round(lm_eval_s / lmlab_s, 3), "target": TARGET_RATIO,
        "lmlab_seconds": round(lmlab_s, 3), "lm_eval_seconds": round(lm_eval_s, 3), "docs": len(docs),
        "choices": args.choices, "model": f"gpt {config.n_layer}x{config.n_embd} block {config.block_size} "
        f"vocab {config.vocab_size}", "lm_eval_batch_size": args.batch_size,
        "acc_lmlab": acc_lmlab, "acc_lm_eval": acc_lm_eval,
    }))


if __name__ == "__main__":
    main()
