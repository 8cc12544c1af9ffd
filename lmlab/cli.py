"""The `lmlab` command: one verb per stage of the pipeline. It parses arguments and calls the library.

    lmlab data stats|prepare   lmlab tokenizer train   lmlab datasets list|get
    lmlab train                lmlab eval [compare|sheet|ratings]     lmlab generate
    lmlab tune [compare]       lmlab pipeline TASK --model RUN [TEXT ...]
    lmlab word2vec train|similar|analogy|map|export|evaluate
    lmlab export / import      lmlab report             lmlab quickstart
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lmlab.errors import LmlabError

Handler = Callable[[argparse.Namespace], None]


def _write_json(path: str | None, payload: Any) -> None:
    if path:
        from lmlab.files import write_json

        write_json(path, payload)


def cmd_data_stats(args: argparse.Namespace) -> None:
    from lmlab.data import corpus_stats, format_stats

    stats = corpus_stats(args.paths, text_field=args.text_field, txt_mode=args.txt_mode)
    print(format_stats(stats))
    _write_json(args.json, stats.to_dict())


def cmd_data_prepare(args: argparse.Namespace) -> None:
    from lmlab.config import load_config
    from lmlab.data import format_report
    from lmlab.data.prepare import PrepareConfig, prepare_corpus

    cfg = load_config(PrepareConfig, args.config, args.overrides)
    prepared = prepare_corpus(args.paths, args.out, cfg)
    print(format_report(prepared.report))
    splits = prepared.meta.splits
    print(f"tokenizer: {prepared.tokenizer.vocab_size:,} tokens ({cfg.tokenizer.kind})")
    print(f"packed: train {splits['train'].tokens:,} tokens, val {splits['val'].tokens:,} tokens")
    print(f"wrote {prepared.path}/ (clean.jsonl, tokenizer.json, train.bin, val.bin, meta.json)")
    print(f"next: lmlab train config.yaml data={prepared.path}")


def cmd_tokenizer_train(args: argparse.Namespace) -> None:
    from lmlab.config import load_config
    from lmlab.data import read_documents
    from lmlab.tokenizers import TokenizerConfig, train_tokenizer

    cfg = load_config(TokenizerConfig, args.config, args.overrides)
    tokenizer = train_tokenizer(read_documents(args.paths, text_field=args.text_field), cfg)
    tokenizer.save(args.out)
    print(f"trained a {cfg.kind} tokenizer of {tokenizer.vocab_size:,} tokens; wrote {args.out}")


def cmd_datasets_list(args: argparse.Namespace) -> None:
    from lmlab.datasets import list_corpora, list_labelled

    for spec in list_corpora():
        print(f"{spec.name:<20} {spec.description}")
    for spec in list_labelled():
        print(f"{spec.name:<20} {spec.description}")


def cmd_datasets_get(args: argparse.Namespace) -> None:
    from lmlab.datasets import LABELLED, load_corpus, load_labelled

    if args.name in LABELLED:
        data = load_labelled(args.name)
        for split, counts in data.card["counts"].items():
            per_label = ", ".join(f"{label} {counts[str(label)]:,}" for label in data.labels)
            base = data.card["majority_baseline"][split]
            print(f"{split:<10} {counts['total']:>7,} ({per_label}); majority baseline {base['accuracy']:.3f}")
        print(f"files: {data.directory}/{{train,validation,test}}.jsonl   card: {data.directory}/CARD.md")
        return
    corpus = load_corpus(args.name)
    size = corpus.card.get("size", {})
    print(f"{corpus.name}: {size.get('documents', '?'):,} documents, {size.get('characters', '?'):,} characters")
    print(f"file: {corpus.path}")


def cmd_train(args: argparse.Namespace) -> None:
    from lmlab.runs import open_run
    from lmlab.train import TrainConfig, load_run_config, read_train_config, train_run

    if args.resume:
        if args.overrides:
            raise LmlabError("--resume continues a run with its saved config; overrides are not allowed")
        cfg = load_run_config(args.config)
    elif "=" in args.config and not Path(args.config).exists():  # only overrides, no YAML file
        cfg = read_train_config(None, [args.config, *args.overrides])
    else:
        cfg = read_train_config(args.config, args.overrides)
    result = train_run(cfg, resume=args.resume)
    if not isinstance(cfg, TrainConfig):
        print(f"counted {result.tokens_seen:,} units in {result.seconds:.1f}s")
        print(f"wrote {result.run_dir}/ (model.safetensors, model.json, summary.json)")
    else:
        val = f", val loss {result.val_loss:.4f}" if result.val_loss is not None else ""
        print(f"trained {result.steps} steps ({result.tokens_seen:,} tokens) in {result.seconds:.1f}s: "
              f"train loss {result.train_loss:.4f}{val}")
        print(f"wrote {result.run_dir}/ (model.safetensors, metrics.jsonl, checkpoints/)")
    if open_run(result.run_dir).family_class.kind == "encoder":
        print(f"next: lmlab tune base={result.run_dir} data=sentiment-en-binary   "
              f"lmlab pipeline fill-mask --model {result.run_dir} \"The [MASK] is here.\"")
    else:
        print(f"next: lmlab eval {result.run_dir}   lmlab generate {result.run_dir} \"Once upon a time\"")


def _config_and_overrides(words: list[str]) -> tuple[str | None, list[str]]:
    """A YAML file and dotted overrides, or overrides alone (the first word is then one of them)."""
    if words and "=" in words[0] and not Path(words[0]).exists():
        return None, words
    return (words[0], words[1:]) if words else (None, [])


def cmd_tune(args: argparse.Namespace) -> None:
    from rich.console import Console

    from lmlab.tune.runner import compare_methods, comparison_table, read_tune_config, tune

    if args.words and args.words[0] == "compare":
        config, overrides = _config_and_overrides(args.words[1:])
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        rows = compare_methods(config, overrides, methods, args.out or "runs/tune-compare")
        Console().print(comparison_table(rows))
        print(f"wrote {args.out or 'runs/tune-compare'}/compare.md, compare.json, compare.png")
        _write_json(args.json, rows)
        return
    config, overrides = _config_and_overrides(args.words)
    summary = tune(read_tune_config(config, overrides))
    figures = ", ".join(f"{name[len('test_'):].replace('_', ' ')} {value:.3f}" for name, value in summary.items()
                        if name.startswith("test_") and name != "test_examples" and isinstance(value, float))
    baseline = summary.get("majority_baseline")
    against = f" (majority class: accuracy {baseline['accuracy']:.3f})" if baseline else ""
    print(f"test: {figures}{against}; {summary['trainable_parameters']:,} trainable parameters; "
          f"{summary['wall_seconds']:.0f}s")
    _write_json(args.json, summary)


def cmd_eval(args: argparse.Namespace) -> None:
    if args.targets[0] == "compare":
        _eval_compare(args)
        return
    if args.targets[0] == "sheet":
        _eval_sheet(args)
        return
    if args.targets[0] == "ratings":
        _eval_ratings(args)
        return
    if args.tasks:
        _eval_tasks(args)
        return
    from lmlab.evaluate import evaluate_run

    if len(args.targets) > 1:
        raise LmlabError("eval: one run at a time; to put several on one table use `lmlab eval compare RUN...`")
    result = evaluate_run(args.targets[0], args.split)
    print(f"{args.split}: perplexity {result['perplexity']:.2f}, bits per byte {result['bits_per_byte']:.4f} "
          f"(unigram baseline: {result['unigram_bits_per_byte']:.4f})")
    _write_json(args.json, result)


def _eval_compare(args: argparse.Namespace) -> None:
    from rich.console import Console

    from lmlab.evaluate.compare import compare_runs, comparison_table, write_comparison

    rows = compare_runs(args.targets[1:], data=args.data, split=args.split, max_documents=args.max_documents)
    Console().print(comparison_table(rows))
    out = write_comparison(rows, args.out or "runs/compare")
    print(f"wrote {out}/compare.md, compare.json, compare.png")
    _write_json(args.json, [row.to_dict() for row in rows])


def _eval_tasks(args: argparse.Namespace) -> None:
    from rich.console import Console

    from lmlab.evaluate.harness import bundled_tasks
    from lmlab.evaluate.leaderboard import evaluate_runs, results_json, results_table, write_results

    names = [name.strip() for group in args.tasks for name in group.split(",") if name.strip()]
    tasks = bundled_tasks() if names == ["all"] else names
    results = evaluate_runs(args.targets, tasks, limit=args.limit, num_fewshot=args.num_fewshot)
    Console().print(results_table(results))
    out = write_results(results, args.out or "runs/eval", with_samples=args.log_samples)
    print(f"wrote {out}/results.md, results.json" + (", results.png" if len(results) > 1 else ""))
    _write_json(args.json, results_json(results))


def _eval_sheet(args: argparse.Namespace) -> None:
    from lmlab.evaluate.human import export_rating_sheet, read_rating_items

    if len(args.targets) != 2 or not args.out:
        raise LmlabError("eval sheet: give one JSONL of {id, system, prompt, output} records and --out SHEET.csv")
    items = read_rating_items(args.targets[1])
    key = export_rating_sheet(items, args.out, criteria=args.criteria, scale=tuple(args.scale), seed=args.seed,
                              blind=not args.not_blind)
    low, high = args.scale
    print(f"wrote {args.out} ({len(items)} outputs, shuffled{'' if args.not_blind else ', blind'}) and its key {key}")
    print(f"next: give each rater a copy named after them (alice.csv, ...) to fill in {', '.join(args.criteria)} "
          f"from {low} to {high}; then: lmlab eval ratings alice.csv bob.csv ... --key {key}")


def _eval_ratings(args: argparse.Namespace) -> None:
    from lmlab.evaluate.human import rating_markdown, rating_report, read_rating_sheets
    from lmlab.files import write_text

    if len(args.targets) < 2:
        raise LmlabError("eval ratings: give the filled sheets, one per rater (or with a `rater` column)")
    report = rating_report(read_rating_sheets(args.targets[1:], key=args.key, scale=tuple(args.scale)))
    markdown = rating_markdown(report)
    print(markdown)
    if args.out:
        write_text(args.out, markdown)
        print(f"wrote {args.out}")
    _write_json(args.json, report.to_dict())


def cmd_generate(args: argparse.Namespace) -> None:
    from lmlab.generate import GenerationParams, stream_text
    from lmlab.runs import open_run

    params = GenerationParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                              top_p=args.top_p, repetition_penalty=args.repetition_penalty,
                              stop=args.stop or [], seed=args.seed, compile=args.compile)
    if args.stream:
        run = open_run(args.run)
        model, tokenizer = run.model(), run.tokenizer()
        for prompt in args.prompts:
            print(prompt, end="", flush=True)
            for piece in stream_text(model, tokenizer, prompt, params):
                print(piece, end="", flush=True)
            print()
        return
    lm = open_run(args.run).language_model()
    for prompt, text in zip(args.prompts, lm.generate(args.prompts, params), strict=True):
        print(prompt + text)


def cmd_pipeline(args: argparse.Namespace) -> None:
    from lmlab.pipelines import format_answer, json_line, pipeline

    texts = args.texts or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    names = ("top_k", "pooling", "normalize", "max_new_tokens", "temperature", "top_p", "seed")
    options = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    if getattr(args, "all_labels", False):
        options["top_k"] = None
    run = pipeline(args.task, model=args.model, device=args.device, batch_size=args.batch_size)
    if args.task == "question-answering":  # each text is a context for the one question
        answers = run([{"question": args.question, "context": text} for text in texts], **options)
    else:
        answers = run(texts, **options)
    for text, answer in zip(texts, answers, strict=True):
        print(json_line(text, answer) if args.json else format_answer(args.task, text, answer), flush=True)


def cmd_word2vec_train(args: argparse.Namespace) -> None:
    from rich.console import Console

    from lmlab.config import load_config
    from lmlab.train.vectors import Word2VecRunModel, Word2VecTrainConfig, train_word2vec_run

    model = load_config(Word2VecRunModel, args.config, args.overrides)
    cfg = Word2VecTrainConfig(run_dir=args.out, paths=args.paths, text_field=args.text_field, unit=args.unit,
                              keep_case=args.keep_case, model=model)
    vectors = train_word2vec_run(cfg, console=Console()).vectors
    print(f"{len(vectors):,} words x {vectors.dim} dimensions ({model.architecture}); wrote {args.out}/")
    print(f"next: lmlab word2vec similar {args.out} WORD   lmlab word2vec analogy {args.out} king man woman")


def _load_vectors(path: str) -> Any:
    from lmlab.models.word2vec import WordVectors

    return WordVectors.load(path)


def cmd_word2vec_similar(args: argparse.Namespace) -> None:
    vectors = _load_vectors(args.vectors)
    for word in args.words:
        neighbours = ", ".join(f"{other} {score:.3f}" for other, score in vectors.most_similar([word], topn=args.topn))
        print(f"{word}: {neighbours}")


def cmd_word2vec_analogy(args: argparse.Namespace) -> None:
    vectors = _load_vectors(args.vectors)
    answers = vectors.analogy(args.a, args.b, args.c, topn=args.topn)
    print(f"{args.a} - {args.b} + {args.c} = " + ", ".join(f"{word} {score:.3f}" for word, score in answers))


def cmd_word2vec_map(args: argparse.Namespace) -> None:
    _load_vectors(args.vectors).plot_words(args.words, args.out)
    print(f"wrote {args.out}")


def cmd_word2vec_export(args: argparse.Namespace) -> None:
    _load_vectors(args.vectors).save_word2vec_format(args.out, binary=args.binary)
    print(f"wrote {args.out} (word2vec {'binary' if args.binary else 'text'} format; gensim and word2vec.c read it)")


def cmd_word2vec_evaluate(args: argparse.Namespace) -> None:
    from lmlab.models.word2vec import evaluate_analogies, evaluate_word_pairs

    vectors, result = _load_vectors(args.vectors), {}
    if args.analogies:
        analogies = evaluate_analogies(vectors, args.analogies)
        result["analogy_accuracy"] = analogies.accuracy
        print(f"analogies: accuracy {analogies.accuracy:.3f} ({analogies.skipped:,} questions skipped: unknown words)")
    if args.pairs:
        pairs = evaluate_word_pairs(vectors, args.pairs)
        result.update(spearman=pairs.spearman, pearson=pairs.pearson)
        print(f"word pairs: Spearman {pairs.spearman:.3f}, Pearson {pairs.pearson:.3f} "
              f"({pairs.pairs} pairs, {pairs.skipped} skipped)")
    if not result:
        raise LmlabError("word2vec evaluate: give --analogies FILE and/or --pairs FILE")
    _write_json(args.json, result)


def cmd_export(args: argparse.Namespace) -> None:
    from lmlab.models import load_model
    from lmlab.models.hf import export_gpt2

    tokenizer = Path(args.run) / "tokenizer.json"
    export_gpt2(load_model(args.run), args.out, tokenizer_json=tokenizer if tokenizer.exists() else None)
    print(f"wrote a Hugging Face GPT-2 directory to {args.out}")


def cmd_import(args: argparse.Namespace) -> None:
    import shutil

    from lmlab.models import save_model
    from lmlab.models.hf import import_gpt2

    save_model(import_gpt2(args.hf_dir), args.out)
    tokenizer = Path(args.hf_dir) / "tokenizer.json"
    if tokenizer.exists():
        shutil.copyfile(tokenizer, Path(args.out) / "tokenizer.json")
    print(f"imported {args.hf_dir} into {args.out}")


def cmd_report(args: argparse.Namespace) -> None:
    from lmlab.report import write_report

    print(f"wrote {write_report(args.run)}")


def cmd_quickstart(args: argparse.Namespace) -> None:
    from lmlab.quickstart import QuickstartOptions, run_quickstart

    run_quickstart(QuickstartOptions(out=Path(args.out), steps=args.steps))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lmlab", description="Build your own language model, end to end.")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    def add(sub: Any, name: str, handler: Handler | None, help_text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(handler=handler)
        return command

    def corpus_args(command: argparse.ArgumentParser) -> None:
        command.add_argument("paths", nargs="+", help="files, directories or globs (.txt .jsonl .csv .parquet)")
        command.add_argument("--text-field", default="text", help="JSONL field / CSV or Parquet column")

    def config_args(command: argparse.ArgumentParser) -> None:
        command.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides")

    data = add(verbs, "data", None, "read, clean, deduplicate, tokenize and pack corpora").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    stats = add(data, "stats", cmd_data_stats, "documents, characters, duplicate rate, CJK/Latin share")
    corpus_args(stats)
    stats.add_argument("--txt-mode", choices=["file", "blocks"], default="file")
    stats.add_argument("--json", help="also write the table as JSON")
    prepare = add(data, "prepare", cmd_data_prepare, "clean + dedup, train a tokenizer, pack token shards")
    prepare.add_argument("paths", nargs="+")
    prepare.add_argument("--out", required=True, help="the prepared folder to write")
    prepare.add_argument("--config", help="YAML with data / tokenizer / val_fraction / seed sections")
    prepare.add_argument("--set", dest="overrides", action="append", default=[], metavar="key=value")

    tokenizer = add(verbs, "tokenizer", None, "train tokenizers").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    tok_train = add(tokenizer, "train", cmd_tokenizer_train, "train a byte-level BPE, WordPiece or char tokenizer")
    corpus_args(tok_train)
    tok_train.add_argument("--out", required=True, help="tokenizer.json to write")
    tok_train.add_argument("--config", help="YAML tokenizer config (kind, vocab_size, ...)")
    tok_train.add_argument("--set", dest="overrides", action="append", default=[], metavar="key=value")

    datasets = add(verbs, "datasets", None, "named corpora fetched on first use").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    add(datasets, "list", cmd_datasets_list, "list the known corpora")
    get = add(datasets, "get", cmd_datasets_get, "fetch a corpus into the cache and show its card")
    get.add_argument("name")

    train = add(verbs, "train", cmd_train, "train a model (or --resume RUN_DIR)")
    train.add_argument("config", help="a YAML train config (or a first key=value), or with --resume the run directory")
    config_args(train)
    train.add_argument("--resume", action="store_true", help="continue the run in CONFIG (a run directory)")

    evaluate = add(verbs, "eval", cmd_eval, "perplexity and bits per byte of a run, beside a unigram baseline; "
                   "`eval RUN... --tasks T,...` runs benchmark tasks; "
                   "`eval compare RUN...` puts runs of any generation on one table; "
                   "`eval sheet OUTPUTS.jsonl --out S.csv` / `eval ratings S1.csv S2.csv...`: human rating")
    evaluate.add_argument("targets", nargs="+", metavar="RUN", help="a run directory, or: compare RUN [RUN ...]")
    evaluate.add_argument("--tasks", action="append", metavar="TASK,...",
                          help="harness tasks: bundled names, YAML files, or `all` (any number of runs)")
    evaluate.add_argument("--limit", type=int, help="tasks: score the first N documents of each")
    evaluate.add_argument("--num-fewshot", type=int, help="tasks: k solved examples before each question")
    evaluate.add_argument("--log-samples", action="store_true", help="tasks: keep every request and answer in JSON")
    evaluate.add_argument("--split", default="val", choices=["train", "val"])
    evaluate.add_argument("--json", help="also write the result as JSON")
    evaluate.add_argument("--data", help="compare: the packed data whose split all runs are scored on "
                          "(default: the first run's)")
    evaluate.add_argument("--max-documents", type=int, help="compare: score this many documents, spread evenly")
    evaluate.add_argument("--out", help="compare or tasks: where the tables and chart go (default runs/compare or "
                          "runs/eval); sheet: the CSV to write; ratings: also write the Markdown report here")
    evaluate.add_argument("--criteria", nargs="+", default=["fluency", "coherence", "relevance"], metavar="NAME",
                          help="sheet: one rating column per criterion")
    evaluate.add_argument("--scale", nargs=2, type=int, default=[1, 5], metavar=("LOW", "HIGH"),
                          help="sheet: the rating scale; ratings: the scale of sheets read without --key")
    evaluate.add_argument("--seed", type=int, default=0, help="sheet: the shuffle seed")
    evaluate.add_argument("--not-blind", action="store_true", help="sheet: show the system names to the raters")
    evaluate.add_argument("--key", help="ratings: the SHEET.csv.key.json that `eval sheet` wrote")

    tune_verb = add(verbs, "tune", cmd_tune, "fine-tune a pretrained model on labelled data "
                    "(`tune compare` runs several methods on the same split)")
    tune_verb.add_argument("words", nargs="*", metavar="[compare] [CONFIG] key=value",
                           help="a YAML tune config and/or dotted overrides: base=... data=... method.method=lora")
    tune_verb.add_argument("--methods", default="features,full,adapters,lora,prompt,lora+fgm",
                           help="compare: the methods to run, comma-separated")
    tune_verb.add_argument("--out", help="compare: where the runs and compare.md/.json/.png go "
                           "(default runs/tune-compare)")
    tune_verb.add_argument("--json", help="also write the summary (or the comparison) as JSON")

    generate = add(verbs, "generate", cmd_generate, "continue prompts with a trained model")
    generate.add_argument("run", help="a run or model directory")
    generate.add_argument("prompts", nargs="+")
    generate.add_argument("--max-new-tokens", type=int, default=64)
    generate.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    generate.add_argument("--top-k", type=int)
    generate.add_argument("--top-p", type=float)
    generate.add_argument("--repetition-penalty", type=float, default=1.0)
    generate.add_argument("--stop", action="append", help="stop string (repeatable)")
    generate.add_argument("--seed", type=int)
    generate.add_argument("--stream", action="store_true", help="print tokens as they come")
    generate.add_argument("--compile", action="store_true", help="torch.compile the decode step (long outputs)")

    w2v = add(verbs, "word2vec", None, "word vectors: skip-gram and CBOW with negative sampling").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    w2v_train = add(w2v, "train", cmd_word2vec_train, "learn word vectors from a corpus (a sentence per line)")
    corpus_args(w2v_train)
    w2v_train.add_argument("--out", required=True, help="the run directory to write (vectors, config.yaml, "
                           "metrics.jsonl, summary.json)")
    w2v_train.add_argument("--unit", choices=["word", "character"], default="word",
                           help="word: letters and digits (each Chinese character a word); character: every character")
    w2v_train.add_argument("--keep-case", action="store_true", help="do not lowercase")
    w2v_train.add_argument("--config", help="YAML word2vec config (architecture, dim, window, negative, ...)")
    w2v_train.add_argument("--set", dest="overrides", action="append", default=[], metavar="key=value")
    similar = add(w2v, "similar", cmd_word2vec_similar, "nearest words by cosine similarity")
    similar.add_argument("vectors", help="a vectors directory or a word2vec file")
    similar.add_argument("words", nargs="+")
    similar.add_argument("--topn", type=int, default=10)
    analogy = add(w2v, "analogy", cmd_word2vec_analogy, "a - b + c: `analogy king man woman` -> queen")
    analogy.add_argument("vectors")
    for name in ("a", "b", "c"):
        analogy.add_argument(name)
    analogy.add_argument("--topn", type=int, default=5)
    word_map = add(w2v, "map", cmd_word2vec_map, "a 2-D PCA map of chosen words, as PNG")
    word_map.add_argument("vectors")
    word_map.add_argument("words", nargs="+")
    word_map.add_argument("--out", default="words.png")
    w2v_export = add(w2v, "export", cmd_word2vec_export, "write the word2vec text or binary format")
    w2v_export.add_argument("vectors")
    w2v_export.add_argument("out")
    w2v_export.add_argument("--binary", action="store_true")
    w2v_eval = add(w2v, "evaluate", cmd_word2vec_evaluate, "analogy accuracy and word-pair correlation")
    w2v_eval.add_argument("vectors")
    w2v_eval.add_argument("--analogies", help="a questions-words.txt style file")
    w2v_eval.add_argument("--pairs", help="a WordSim-353 / SimLex-999 style TSV")
    w2v_eval.add_argument("--json", help="also write the figures as JSON")

    pipe = add(verbs, "pipeline", None, "run a model on texts: `lmlab pipeline TASK --model RUN [TEXT ...]`")
    tasks = pipe.add_subparsers(dest="task", required=True, metavar="TASK")

    def pipeline_task(name: str, help_text: str) -> argparse.ArgumentParser:
        command = add(tasks, name, cmd_pipeline, help_text)
        command.add_argument("--model", required=True, help="a run or model directory, a Hugging Face BERT "
                             "directory, or named weights (all-MiniLM-L6-v2)")
        command.add_argument("texts", nargs="*", help="the texts (default: one per line of standard input)")
        command.add_argument("--json", action="store_true", help="print one JSON object per text: {input, output}")
        command.add_argument("--device", help="cpu, cuda, ... (default: cuda when there is one)")
        command.add_argument("--batch-size", type=int, default=16)
        return command

    for name in ("sentiment-analysis", "text-classification"):
        classify = pipeline_task(name, "label texts with a classifier from `lmlab tune`")
        classify.add_argument("--top-k", type=int, help="how many labels to list (default 1)")
        classify.add_argument("--all-labels", action="store_true", help="every label, best first")
    fill = pipeline_task("fill-mask", "the likeliest tokens for each [MASK], from a BERT")
    fill.add_argument("--top-k", type=int, help="predictions per [MASK] (default 5)")
    features = pipeline_task("feature-extraction", "hidden states per token, or one vector per text")
    features.add_argument("--pooling", choices=["mean", "first", "last"], help="one vector per text")
    features.add_argument("--normalize", action=argparse.BooleanOptionalAction,
                          help="unit-length vectors (default: as a sentence-transformers model is used)")
    write = pipeline_task("text-generation", "continue each text with a GPT, RNN, MLP or n-gram run")
    write.add_argument("--max-new-tokens", type=int)
    write.add_argument("--temperature", type=float, help="0 = greedy")
    write.add_argument("--top-k", type=int)
    write.add_argument("--top-p", type=float)
    write.add_argument("--seed", type=int)
    pipeline_task("token-classification", "tag the words of texts with a run of `lmlab tune task=tagging`")
    answer = pipeline_task("question-answering", "find the answer in each text (a context), with a run of "
                           "`lmlab tune task=qa`")
    answer.add_argument("--question", required=True, help="the question asked of every context")

    export = add(verbs, "export", cmd_export, "write a run's GPT as a Hugging Face GPT-2 directory")
    export.add_argument("run")
    export.add_argument("out")
    imp = add(verbs, "import", cmd_import, "import a Hugging Face GPT-2 directory (safetensors) into lmlab")
    imp.add_argument("hf_dir")
    imp.add_argument("out")

    report = add(verbs, "report", cmd_report, "loss and learning-rate curves and an HTML summary of a run")
    report.add_argument("run")

    quick = add(verbs, "quickstart", cmd_quickstart, "the whole pipeline on English + Chinese in a few minutes")
    quick.add_argument("--out", default="runs/quickstart")
    quick.add_argument("--steps", type=int, default=None, help="training steps (default: the tuned demo)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except LmlabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
