"""`lmlab vectors train|similar|analogy|map|export|evaluate`: learn word vectors, then ask things of them.

The vectors are those of the registered family of kind ``word-vectors`` (word2vec's skip-gram and
CBOW); `lmlab vectors train` is `lmlab train` with that family and a corpus, written as one command.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console

from lmlab.cli.common import (
    add_command,
    add_corpus_and_overrides,
    add_json,
    add_text_field,
    corpus_and_overrides,
    save_json,
)
from lmlab.config import build_config, read_config_data
from lmlab.errors import LmlabError, warn
from lmlab.models.registry import family_of_kind
from lmlab.runs import open_run
from lmlab.train.vectors import VectorsTrainConfig, train_vectors_run


def open_vectors(path: str) -> Any:
    """Word vectors from a run or vectors directory, or a word2vec text or binary file."""
    if Path(path).is_dir():
        run = open_run(path)
        if run.family_class.kind != "word-vectors":
            raise run.refusal("lmlab vectors needs word vectors (a run of `lmlab vectors train`), not a "
                              f"{run.family} model")
        return run.model()
    return family_of_kind("word-vectors").load(path)


def _scored(pairs: list[tuple[str, float]]) -> list[dict[str, str | float]]:
    return [{"word": word, "score": score} for word, score in pairs]


def cmd_train(args: argparse.Namespace) -> None:
    paths, overrides = corpus_and_overrides(args.words, "vectors train")
    model = {"family": family_of_kind("word-vectors").family, "unit": args.unit, "keep_case": args.keep_case,
             **read_config_data(args.config, overrides)}
    cfg = build_config(VectorsTrainConfig, {"run_dir": args.out, "paths": paths, "text_field": args.text_field,
                                            "model": model}, source=args.config or "vectors train")
    vectors = train_vectors_run(cfg, console=Console()).vectors
    epochs = [json.loads(line) for line in (Path(args.out) / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    architecture = cfg.model_settings().architecture
    print(f"{len(vectors):,} words x {vectors.dim} dimensions ({architecture}); wrote {args.out}/")
    print(f"next: lmlab vectors similar {args.out} WORD   lmlab vectors analogy {args.out} king man woman")
    save_json(args.json, {"path": args.out, "words": len(vectors), "dim": vectors.dim,
                          "architecture": architecture, "epochs": epochs})


def cmd_similar(args: argparse.Namespace) -> None:
    vectors = open_vectors(args.vectors)
    found = {word: vectors.most_similar([word], topn=args.topn) for word in args.words}
    for word, neighbours in found.items():
        print(f"{word}: " + ", ".join(f"{other} {score:.3f}" for other, score in neighbours))
    save_json(args.json, [{"word": word, "neighbours": _scored(neighbours)} for word, neighbours in found.items()])


def cmd_analogy(args: argparse.Namespace) -> None:
    answers = open_vectors(args.vectors).analogy(args.a, args.b, args.c, topn=args.topn)
    print(f"{args.a} - {args.b} + {args.c} = " + ", ".join(f"{word} {score:.3f}" for word, score in answers))
    save_json(args.json, {"a": args.a, "b": args.b, "c": args.c, "answers": _scored(answers)})


def cmd_map(args: argparse.Namespace) -> None:
    open_vectors(args.vectors).plot_words(args.words, args.out)
    print(f"wrote {args.out}")


def cmd_export(args: argparse.Namespace) -> None:
    open_vectors(args.vectors).save_word2vec_format(args.out, binary=args.binary)
    print(f"wrote {args.out} (word2vec {'binary' if args.binary else 'text'} format; gensim and word2vec.c read it)")


def cmd_evaluate(args: argparse.Namespace) -> None:
    vectors = open_vectors(args.vectors)
    analogies, pairs = args.analogies or [], args.pairs or []
    bundled = not analogies and not pairs
    if bundled:  # the bundled sets of the languages the vocabulary holds
        analogies = pairs = vectors.bundled_sets()
        if not analogies:
            raise LmlabError(f"{args.vectors}: no English or Chinese word among the most frequent, so no bundled set "
                             "fits; give --analogies FILE and/or --pairs FILE")
    found_analogies = {name: vectors.analogies(name) for name in analogies}
    found_pairs, uncovered = {}, []
    for name in pairs:
        try:
            found_pairs[name] = vectors.word_pairs(name)
        except LmlabError as error:
            if not bundled:  # the user's own file: theirs to fix
                raise
            uncovered.append(f"{error}, so it is skipped")  # a bundled set is well formed: too few of its words
    answered = {name: sum(n for _, n in found.sections.values()) for name, found in found_analogies.items()}
    if bundled and not found_pairs and not any(answered.values()):
        raise LmlabError(f"{args.vectors}: the vocabulary covers none of the bundled sets ({', '.join(analogies)}); "
                         "give --analogies FILE and/or --pairs FILE")
    for message in uncovered:
        warn(message)
    result: dict[str, dict[str, Any]] = {"analogies": {}, "pairs": {}}
    for name, found in found_analogies.items():
        # No question answered is no accuracy, not an accuracy of 0 (the library says 0.0, as gensim does).
        accuracy = found.accuracy if answered[name] else None
        result["analogies"][name] = {"accuracy": accuracy, "answered": answered[name], "skipped": found.skipped,
                                     "sections": found.sections}
        if accuracy is None:
            print(f"analogies {name}: accuracy n/a (0 of {found.skipped:,} answered: each has a word outside "
                  "the vocabulary)")
        else:
            print(f"analogies {name}: accuracy {accuracy:.3f} on {answered[name]:,} questions "
                  f"({found.skipped:,} skipped: a word outside the vocabulary)")
    for name, found in found_pairs.items():
        result["pairs"][name] = {"spearman": found.spearman, "pearson": found.pearson, "pairs": found.pairs,
                                 "skipped": found.skipped}
        print(f"word pairs {name}: Spearman {found.spearman:.3f}, Pearson {found.pearson:.3f} "
              f"({found.pairs} pairs, {found.skipped} skipped: a word outside the vocabulary)")
    save_json(args.json, result)


def add_vectors(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    train = add_command(actions, "train", cmd_train, "learn word vectors from a corpus (a sentence per line)")
    add_corpus_and_overrides(train, "epochs=10 dim=100")
    add_text_field(train)
    train.add_argument("--out", required=True,
                       help="the run directory to write (vectors, config.yaml, metrics.jsonl, summary.json)")
    train.add_argument("--unit", choices=["word", "character"], default="word",
                       help="word: letters and digits (each Chinese character a word); character: every character")
    train.add_argument("--keep-case", action="store_true", help="do not lowercase")
    train.add_argument("--config", help="YAML model config (architecture, dim, window, negative, ...)")
    add_json(train, "the vocabulary size, dimensions and each epoch's loss")

    similar = add_command(actions, "similar", cmd_similar, "nearest words by cosine similarity")
    similar.add_argument("vectors", help="a vectors directory or a word2vec file")
    similar.add_argument("words", nargs="+")
    similar.add_argument("--topn", type=int, default=10)
    add_json(similar, "each word's neighbours and scores")

    analogy = add_command(actions, "analogy", cmd_analogy, "a - b + c: `analogy king man woman` -> queen")
    analogy.add_argument("vectors")
    for name in ("a", "b", "c"):
        analogy.add_argument(name)
    analogy.add_argument("--topn", type=int, default=5)
    add_json(analogy, "the answers and scores")

    word_map = add_command(actions, "map", cmd_map, "a 2-D PCA map of chosen words, as PNG")
    word_map.add_argument("vectors")
    word_map.add_argument("words", nargs="+")
    word_map.add_argument("--out", default="words.png")

    export = add_command(actions, "export", cmd_export, "write the word2vec text or binary format")
    export.add_argument("vectors")
    export.add_argument("out")
    export.add_argument("--binary", action="store_true")

    evaluate = add_command(actions, "evaluate", cmd_evaluate, "analogy accuracy and word-pair correlation")
    evaluate.add_argument("vectors")
    evaluate.add_argument("--analogies", action="append", metavar="en|zh|FILE",
                          help="a bundled analogy set (en, zh) or a questions-words.txt style file; repeatable")
    evaluate.add_argument("--pairs", action="append", metavar="en|zh|FILE",
                          help="a bundled word-similarity set (en, zh) or a WordSim-353 / SimLex-999 style TSV; "
                               "repeatable. With neither option: the bundled sets of the vocabulary's languages")
    add_json(evaluate, "the figures")
