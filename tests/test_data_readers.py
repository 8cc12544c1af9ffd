"""Readers: every format yields its documents in order, and every data mistake names file and line."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lmlab.data import iter_documents, read_documents
from lmlab.errors import LmlabError


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def test_txt_one_document_per_file(tmp_path):
    (tmp_path / "a.txt").write_text("第一篇。\n\nsecond paragraph\n", encoding="utf-8")
    (tmp_path / "b.txt").write_text("another file", encoding="utf-8")
    assert list(read_documents(tmp_path)) == ["第一篇。\n\nsecond paragraph\n", "another file"]


def test_txt_blocks(tmp_path):
    (tmp_path / "a.txt").write_bytes("one\nstill one\r\n\r\n  \ntwo 二\n\n\n\nthree".encode())
    docs = list(iter_documents(tmp_path / "a.txt", txt_mode="blocks"))
    assert [d.text for d in docs] == ["one\nstill one", "two 二", "three"]
    assert [d.line for d in docs] == [1, 5, 9]


def test_jsonl_with_custom_field_and_blank_lines(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"body": "你好"}\n\n{"body": "hi", "other": 1}\n', encoding="utf-8")
    docs = list(iter_documents(path, text_field="body"))
    assert [(d.text, d.line) for d in docs] == [("你好", 1), ("hi", 3)]


def test_csv_quoted_multiline_fields_and_bom(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('\ufeffid,text\n1,"line one\nline two, with comma"\n2,简单\n', encoding="utf-8")
    docs = list(iter_documents(path))
    assert [(d.text, d.line) for d in docs] == [("line one\nline two, with comma", 2), ("简单", 4)]


def test_csv_long_field_is_accepted(tmp_path):
    long_text = "x" * 200_000  # beyond the csv module's default 128 KiB field limit
    (tmp_path / "e.csv").write_text(f"text\n{long_text}\n", encoding="utf-8")
    assert list(read_documents(tmp_path / "e.csv")) == [long_text]


def test_parquet_in_batches(tmp_path):
    texts = [f"文档 {i}" for i in range(2500)]  # more rows than one read batch
    pq.write_table(pa.table({"id": list(range(2500)), "text": texts}), tmp_path / "f.parquet")
    docs = list(iter_documents(tmp_path / "f.parquet"))
    assert [d.text for d in docs] == texts
    assert docs[-1].line == 2500


def test_directory_recursion_is_sorted_and_skips_unknown_files(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "b.txt").write_text("b")
    (tmp_path / "sub" / "a.txt").write_text("sub/a")
    (tmp_path / "README.md").write_text("not data")
    write_jsonl(tmp_path / "a.jsonl", [{"text": "a"}])
    assert list(read_documents([tmp_path])) == ["a", "b", "sub/a"]


def test_glob_patterns_and_each_file_read_once(tmp_path):
    for name in ("x1.txt", "x2.txt", "y.txt"):
        (tmp_path / name).write_text(name)
    found = list(read_documents([str(tmp_path / "x*.txt"), tmp_path / "x1.txt", str(tmp_path / "**" / "y.txt")]))
    assert found == ["x1.txt", "x2.txt", "y.txt"]


def test_reading_is_lazy(tmp_path):
    # A file whose end is broken: taking the first document must not read that far.
    path = tmp_path / "big.jsonl"
    with open(path, "w", encoding="utf-8") as out:
        for i in range(20_000):
            out.write(json.dumps({"text": f"document {i}"}) + "\n")
        out.write("{broken\n")
    documents = read_documents(path)
    assert next(documents) == "document 0"
    with pytest.raises(LmlabError, match=r"big.jsonl:20001: not valid JSON"):
        list(documents)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"text": "ok"}\n{"text": "bad\n', r"c\.jsonl:2: not valid JSON"),
        (b'{"text": "ok"}\n\n{"title": "x"}\n', r"c\.jsonl:3: no field 'text'"),
        (b'{"text": 17}\n', r"c\.jsonl:1: field 'text' is int, not a string"),
        (b'{"text": null}\n', r"c\.jsonl:1: field 'text' is null, not a string"),
        (b'["text"]\n', r"c\.jsonl:1: expected a JSON object, got list"),
        (b'{"text": "\\ud800"}\n', r"c\.jsonl:1: field 'text' holds a lone surrogate"),
        (b'{"text": "ok"}\n{"text": "caf\xe9"}\n', r"c\.jsonl:2: not valid UTF-8 at byte 28"),
    ],
)
def test_jsonl_errors_name_file_and_line(tmp_path, content, message):
    (tmp_path / "c.jsonl").write_bytes(content)
    with pytest.raises(LmlabError, match=message):
        list(read_documents(tmp_path / "c.jsonl"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"id,body\n1,x\n", r"d\.csv:1: no column 'text' \(columns: id, body\)"),
        (b"id,text\n1,x\n2\n", r"d\.csv:3: row has 1 fields, the header has 2"),
        (b"text\nfine\n\xff\xfe\n", r"d\.csv:3: not valid UTF-8 at byte 10"),
    ],
)
def test_csv_errors_name_file_and_line(tmp_path, content, message):
    (tmp_path / "d.csv").write_bytes(content)
    with pytest.raises(LmlabError, match=message):
        list(read_documents(tmp_path / "d.csv"))


def test_invalid_utf8_in_txt_names_line_and_byte(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"line one\nline \x80two\n")
    with pytest.raises(LmlabError, match=r"a\.txt:2: not valid UTF-8 at byte 14"):
        list(read_documents(tmp_path / "a.txt"))


def test_parquet_errors(tmp_path):
    pq.write_table(pa.table({"body": ["x"]}), tmp_path / "a.parquet")
    with pytest.raises(LmlabError, match=r"a\.parquet: no column 'text' \(columns: body\)"):
        list(read_documents(tmp_path / "a.parquet"))
    pq.write_table(pa.table({"text": ["x", None]}), tmp_path / "b.parquet")
    with pytest.raises(LmlabError, match=r"b\.parquet: row 2: column 'text' is null"):
        list(read_documents(tmp_path / "b.parquet"))
    (tmp_path / "c.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(LmlabError, match=r"c\.parquet: not a readable Parquet file"):
        list(read_documents(tmp_path / "c.parquet"))


def test_path_errors_are_raised_at_the_call(tmp_path):
    (tmp_path / "notes.md").write_text("x")
    with pytest.raises(LmlabError, match=r"missing\.txt: no such file or directory"):
        read_documents(tmp_path / "missing.txt")
    with pytest.raises(LmlabError, match=r"notes\.md: unknown extension '\.md'"):
        read_documents(tmp_path / "notes.md")
    with pytest.raises(LmlabError, match=r"\*\.jsonl: no .* files matched"):
        read_documents(str(tmp_path / "*.jsonl"))
    with pytest.raises(LmlabError, match=r"the directory holds no"):
        read_documents(tmp_path)
    with pytest.raises(LmlabError, match=r"no corpus paths"):
        read_documents([])
    with pytest.raises(LmlabError, match=r"txt_mode"):
        read_documents(tmp_path, txt_mode="lines")


def test_an_existing_file_with_glob_characters_is_read_literally(tmp_path):
    (tmp_path / "notes[1].txt").write_text("literal", encoding="utf-8")
    assert list(read_documents(str(tmp_path / "notes[1].txt"))) == ["literal"]
