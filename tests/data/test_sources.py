"""Tests for mixtune.data.sources: layouts, formats, order, and every bad-input message."""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from mixtune.data.sources import (
    EMPTY_TEXT,
    INVALID_UTF8,
    MALFORMED_JSON,
    MISSING_DOMAIN,
    MISSING_TEXT,
    NOT_AN_OBJECT,
    TEXT_NOT_STRING,
    Document,
    domain_name_problem,
    read_documents,
)
from mixtune.errors import UserError

# ----- helpers -------------------------------------------------------------------------------------


def write_lines(path: Path, lines: list[str | bytes]) -> Path:
    """Write raw lines (str or bytes) to `path`, compressed according to its suffix."""
    data = b"".join((line if isinstance(line, bytes) else line.encode()) + b"\n" for line in lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        data = gzip.compress(data)
    elif path.suffix in (".zst", ".zstd"):
        data = zstandard.ZstdCompressor().compress(data)
    path.write_bytes(data)
    return path


def write_jsonl(path: Path, records: list[Any]) -> Path:
    return write_lines(path, [json.dumps(record) for record in records])


def write_parquet(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(records), path)
    return path


def write_hf(path: Path, records: list[dict]) -> Path:
    import datasets

    datasets.disable_progress_bars()
    datasets.Dataset.from_list(records).save_to_disk(str(path))
    return path


def write_hf_dict(path: Path, splits: dict[str, list[dict]]) -> Path:
    import datasets

    datasets.disable_progress_bars()
    parts = {name: datasets.Dataset.from_list(records) for name, records in splits.items()}
    datasets.DatasetDict(parts).save_to_disk(str(path))
    return path


def texts(records: list[str]) -> list[dict]:
    return [{"text": text} for text in records]


def pile(name: str, text: str) -> dict:
    return {"text": text, "meta": {"pile_set_name": name}}


def read(*sources: Path, **kwargs: Any) -> list[tuple[str | None, str, str]]:
    return [(d.split, d.domain, d.text) for d in read_documents(list(sources), **kwargs)]


def read_skipping(*sources: Path, **kwargs: Any) -> tuple[list[str], Counter]:
    """Texts read with skip_bad=True, and the (split, domain, reason) counts reported."""
    skipped: Counter = Counter()

    def on_skip(split: str | None, domain: str | None, reason: str) -> None:
        skipped[(split, domain, reason)] += 1

    docs = read_documents(list(sources), skip_bad=True, on_skip=on_skip, **kwargs)
    return [d.text for d in docs], skipped


def error_of(*sources: Path, **kwargs: Any) -> str:
    with pytest.raises(UserError) as info:
        list(read_documents(list(sources), **kwargs))
    return str(info.value)


# ----- layouts and formats -------------------------------------------------------------------------


def test_folder_domains_every_format(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_jsonl(src / "alpha" / "a.jsonl", texts(["a1", "a2"]))
    write_jsonl(src / "alpha" / "sub" / "b.jsonl.gz", texts(["a3"]))
    (src / "alpha" / ".DS_Store").write_bytes(b"\x00junk")  # hidden: ignored
    write_jsonl(src / "beta" / "c.jsonl.zst", texts(["b1"]))
    write_jsonl(src / "beta" / "d.json", texts(["b2"]))
    write_jsonl(src / "beta" / "e.json.zstd", texts(["b3"]))
    write_parquet(src / "gamma" / "p.parquet", texts(["g1", "g2"]))
    (src / "delta").mkdir()
    (src / "delta" / "one.txt").write_text("a whole\nfile\n")
    write_hf(src / "epsilon", texts(["e1", "e2"]))
    write_jsonl(src / "Gutenberg (PG-19)" / "g.jsonl", texts(["pg"]))
    (src / ".cache").mkdir()  # hidden folder: not a domain

    assert read(src) == [
        (None, "Gutenberg (PG-19)", "pg"),
        (None, "alpha", "a1"),
        (None, "alpha", "a2"),
        (None, "alpha", "a3"),
        (None, "beta", "b1"),
        (None, "beta", "b2"),
        (None, "beta", "b3"),
        (None, "delta", "a whole\nfile\n"),
        (None, "epsilon", "e1"),
        (None, "epsilon", "e2"),
        (None, "gamma", "g1"),
        (None, "gamma", "g2"),
    ]


def test_documents_are_frozen(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "s" / "d" / "a.jsonl", texts(["x"]))
    (doc,) = read_documents([tmp_path / "s"])
    assert doc == Document(None, "d", "x")
    with pytest.raises(AttributeError):
        doc.text = "y"  # type: ignore[misc]


def test_blank_lines_crlf_and_bom(tmp_path: Path) -> None:
    path = tmp_path / "s" / "d" / "a.jsonl"
    write_lines(path, ['\ufeff{"text": "one"}\r', "", "   ", '{"text": "two"}\r'])
    assert [t for _, _, t in read(tmp_path / "s")] == ["one", "two"]


def test_zstd_with_several_frames(tmp_path: Path) -> None:
    compressor = zstandard.ZstdCompressor()
    frames = [compressor.compress(b'{"text": "a"}\n{"te'), compressor.compress(b'xt": "b"}\n')]
    path = tmp_path / "s" / "d" / "a.jsonl.zst"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"".join(frames))
    assert [t for _, _, t in read(tmp_path / "s")] == ["a", "b"]


def test_long_line_spanning_many_chunks(tmp_path: Path) -> None:
    long_text = "x" * (3 * (1 << 20) + 17)
    write_jsonl(tmp_path / "s" / "d" / "a.jsonl.gz", texts(["short", long_text, "end"]))
    assert [t for _, _, t in read(tmp_path / "s")] == ["short", long_text, "end"]


@pytest.mark.parametrize("val_name", ["validation", "val"])
def test_split_folders(tmp_path: Path, val_name: str) -> None:
    src = tmp_path / "src"
    write_jsonl(src / "train" / "web" / "a.jsonl", texts(["t-web"]))
    write_jsonl(src / "train" / "code" / "a.jsonl", texts(["t-code"]))
    write_jsonl(src / val_name / "web" / "a.jsonl", texts(["v-web"]))
    write_jsonl(src / "test" / "web" / "a.jsonl", texts(["ignored"]))  # other splits: ignored
    (src / "README.md").write_text("ignored too")
    assert read(src) == [
        ("train", "code", "t-code"),
        ("train", "web", "t-web"),
        ("validation", "web", "v-web"),
    ]


def test_train_without_validation_is_a_domain(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "s" / "train" / "a.jsonl", texts(["x"]))
    assert read(tmp_path / "s") == [(None, "train", "x")]


def test_pile_style_shards_with_domain_field(tmp_path: Path) -> None:
    src = tmp_path / "pile"
    write_jsonl(src / "01.jsonl.zst", [pile("Pile-CC", "c1"), pile("Gutenberg (PG-19)", "g1")])
    write_jsonl(src / "00.jsonl.zst", [pile("ArXiv", "a0")])
    write_parquet(src / "02.parquet", [pile("ArXiv", "a2")])  # nested struct column
    (src / "sub").mkdir()
    write_hf(src / "sub" / "hf", [pile("Github", "h1")])
    got = read(src, domain_field="meta.pile_set_name")
    assert got == [
        (None, "ArXiv", "a0"),
        (None, "Pile-CC", "c1"),
        (None, "Gutenberg (PG-19)", "g1"),
        (None, "ArXiv", "a2"),
        (None, "Github", "h1"),
    ]


def test_domain_field_with_splits_and_single_file(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_jsonl(src / "train" / "00.jsonl", [pile("A", "t")])
    write_jsonl(src / "val" / "00.jsonl", [pile("A", "v")])
    assert read(src, domain_field="meta.pile_set_name") == [
        ("train", "A", "t"),
        ("validation", "A", "v"),
    ]
    single = write_jsonl(tmp_path / "one.jsonl", [pile("B", "b")])
    assert read(single, domain_field="meta.pile_set_name") == [(None, "B", "b")]


def test_flattened_field_name_wins(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [{"text": "x", "meta.set": "Flat"}])
    assert read(path, domain_field="meta.set") == [(None, "Flat", "x")]


def test_dataset_dict_with_splits(tmp_path: Path) -> None:
    src = write_hf_dict(
        tmp_path / "dd",
        {
            "test": [pile("X", "ignored")],
            "train": [pile("A", "t1"), pile("B", "t2")],
            "validation": [pile("A", "v1")],
        },
    )
    assert read(src, domain_field="meta.pile_set_name") == [
        ("train", "A", "t1"),
        ("train", "B", "t2"),
        ("validation", "A", "v1"),
    ]


def test_dataset_dict_val_split_name(tmp_path: Path) -> None:
    src = write_hf_dict(tmp_path / "dd", {"train": [pile("A", "t")], "val": [pile("A", "v")]})
    assert read(src, domain_field="meta.pile_set_name") == [
        ("train", "A", "t"),
        ("validation", "A", "v"),
    ]


def test_dataset_dict_without_validation(tmp_path: Path) -> None:
    only_train = write_hf_dict(tmp_path / "a", {"train": [pile("A", "t")], "test": []})
    assert read(only_train, domain_field="meta.pile_set_name") == [(None, "A", "t")]
    single = write_hf_dict(tmp_path / "b", {"everything": [pile("A", "e")]})
    assert read(single, domain_field="meta.pile_set_name") == [(None, "A", "e")]
    several = write_hf_dict(tmp_path / "c", {"x": [pile("A", "1")], "y": [pile("A", "2")]})
    message = error_of(several, domain_field="meta.pile_set_name")
    assert str(several) in message and "none is 'train'" in message


def test_damaged_dataset_dict_index(tmp_path: Path) -> None:
    src = write_hf_dict(tmp_path / "dd", {"train": [pile("A", "t")]})
    (src / "dataset_dict.json").write_text("{not json")
    message = error_of(src, domain_field="meta.pile_set_name")
    assert "dataset_dict.json: not a valid DatasetDict index" in message
    (src / "dataset_dict.json").write_text('{"splits": []}')
    assert "has no splits" in error_of(src, domain_field="meta.pile_set_name")


def test_custom_dotted_text_field(tmp_path: Path) -> None:
    src = tmp_path / "s"
    write_jsonl(src / "d" / "a.jsonl", [{"content": {"body": "hello"}}])
    write_parquet(src / "d" / "b.parquet", [{"content": {"body": "world"}, "other": 1}])
    assert read(src, text_field="content.body") == [(None, "d", "hello"), (None, "d", "world")]


def test_order_is_deterministic(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    for name in ["c", "a", "b"]:  # created out of order
        write_jsonl(one / "d" / f"{name}.jsonl", texts([f"one-{name}"]))
        write_jsonl(two / name / "x.jsonl", texts([f"two-{name}"]))
    expected = [
        (None, "d", "one-a"),
        (None, "d", "one-b"),
        (None, "d", "one-c"),
        (None, "a", "two-a"),
        (None, "b", "two-b"),
        (None, "c", "two-c"),
    ]
    assert read(one, two) == expected
    assert read(one, two) == expected
    assert read(two, one) == expected[3:] + expected[:3]


def test_empty_text_is_always_skipped_and_reported(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "s" / "d" / "a.jsonl", texts(["x", "", "  \n", "y"]))
    (tmp_path / "s" / "d" / "empty.txt").write_text("\n")
    reported = []
    docs = read_documents([tmp_path / "s"], on_skip=lambda *args: reported.append(args))
    assert [d.text for d in docs] == ["x", "y"]
    assert reported == [(None, "d", EMPTY_TEXT)] * 3


# ----- bad records ---------------------------------------------------------------------------------

BAD_LINES = [
    ('{"text": "a", "x" 1}', MALFORMED_JSON, "Expecting ':' delimiter: column 19"),
    (b'{"text": "caf\xe9"}', INVALID_UTF8, "0xe9"),
    ("[1, 2]", NOT_AN_OBJECT, "an array"),
    ('{"body": "a"}', MISSING_TEXT, "'body'"),
    ('{"text": 3}', TEXT_NOT_STRING, "a number"),
    ('{"text": null}', TEXT_NOT_STRING, "null"),
    ('{"text": "lone \\ud800"}', INVALID_UTF8, "U+D800"),
]


@pytest.mark.parametrize(("line", "reason", "detail"), BAD_LINES)
def test_bad_record_errors(tmp_path: Path, line: str | bytes, reason: str, detail: str) -> None:
    write_lines(tmp_path / "s" / "d" / "f.jsonl.gz", ['{"text": "ok"}', "", line])
    message = error_of(tmp_path / "s")
    assert f"f.jsonl.gz:3: {reason} (" in message
    assert detail in message
    assert "--skip-bad-records" in message


@pytest.mark.parametrize(("line", "reason", "detail"), BAD_LINES)
def test_bad_records_skipped_and_counted(
    tmp_path: Path, line: str | bytes, reason: str, detail: str
) -> None:
    write_lines(tmp_path / "s" / "d" / "f.jsonl", ['{"text": "ok"}', line, line, '{"text": ""}'])
    got, skipped = read_skipping(tmp_path / "s")
    assert got == ["ok"]
    assert skipped == {(None, "d", reason): 2, (None, "d", EMPTY_TEXT): 1}


def test_json_file_hint(tmp_path: Path) -> None:
    path = tmp_path / "s" / "d" / "data.json"
    path.parent.mkdir(parents=True)
    path.write_text('[\n  {"text": "a"}\n]\n')
    message = error_of(tmp_path / "s")
    assert "data.json:1: malformed JSON" in message and "read as JSON lines" in message


@pytest.mark.parametrize(
    ("record", "detail"),
    [
        ({"text": "a"}, "no field 'meta.pile_set_name'"),
        ({"text": "a", "meta": {"pile_set_name": 7}}, "a number"),
        ({"text": "a", "meta": {"pile_set_name": ""}}, "empty"),
        ({"text": "a", "meta": "flat"}, "no field"),
    ],
)
def test_missing_domain_field(tmp_path: Path, record: dict, detail: str) -> None:
    path = write_jsonl(tmp_path / "f.jsonl", [pile("A", "ok"), record])
    message = error_of(path, domain_field="meta.pile_set_name")
    assert f"f.jsonl:2: {MISSING_DOMAIN} (" in message and detail in message
    got, skipped = read_skipping(path, domain_field="meta.pile_set_name")
    assert got == ["ok"]
    assert skipped == {(None, None, MISSING_DOMAIN): 1}


def test_domain_known_when_text_is_bad(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "f.jsonl", [pile("A", "ok"), {"meta": {"pile_set_name": "A"}}])
    _, skipped = read_skipping(path, domain_field="meta.pile_set_name")
    assert skipped == {(None, "A", MISSING_TEXT): 1}


def test_bad_rows_in_parquet_and_hf(tmp_path: Path) -> None:
    write_parquet(tmp_path / "p" / "d" / "x.parquet", [{"text": "ok"}, {"text": None}])
    message = error_of(tmp_path / "p")
    assert "x.parquet, row 2: text not a string (field 'text' is null). Fix the row" in message

    write_hf(tmp_path / "h" / "d", [{"body": "a"}])
    message = error_of(tmp_path / "h")
    assert f"{tmp_path / 'h' / 'd'}, row 1: {MISSING_TEXT}" in message
    assert "'body'" in message  # names the fields the rows do have

    got, skipped = read_skipping(tmp_path / "p")
    assert got == ["ok"] and skipped == {(None, "d", TEXT_NOT_STRING): 1}


def test_invalid_utf8_txt(tmp_path: Path) -> None:
    path = tmp_path / "s" / "d" / "t.txt"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"bad \xff byte")
    (tmp_path / "s" / "d" / "u.txt").write_text("good")
    message = error_of(tmp_path / "s")
    assert "t.txt: invalid UTF-8 (byte 0xff" in message and "Fix the file" in message
    got, skipped = read_skipping(tmp_path / "s")
    assert got == ["good"] and skipped == {(None, "d", INVALID_UTF8): 1}


def test_bad_records_keep_their_split(tmp_path: Path) -> None:
    write_lines(tmp_path / "s" / "train" / "d" / "a.jsonl", ['{"text": "t"}'])
    write_lines(tmp_path / "s" / "val" / "d" / "a.jsonl", ['{"text": "v"}', "{oops"])
    got, skipped = read_skipping(tmp_path / "s")
    assert got == ["t", "v"] and skipped == {("validation", "d", MALFORMED_JSON): 1}


# ----- domain names --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["Pile-CC", "Gutenberg (PG-19)", "Wikipedia (en)", "a.b", "über", "x" * 200]
)
def test_safe_domain_names(name: str) -> None:
    assert domain_name_problem(name) is None


@pytest.mark.parametrize(
    "name",
    ["", ".", "..", "../x", "a/b", "a\\b", "a\x00b", "tab\there", " lead", "trail ", "x" * 201],
)
def test_unsafe_domain_names(name: str) -> None:
    assert domain_name_problem(name) is not None


@pytest.mark.parametrize("value", ["../x", "a/b", "..", " A", "a\nb"])
def test_unsafe_domain_field_value_is_never_skipped(tmp_path: Path, value: str) -> None:
    path = write_jsonl(tmp_path / "f.jsonl", [pile("A", "ok"), pile("A", "ok"), pile(value, "x")])
    for skip_bad in (False, True):
        message = error_of(path, domain_field="meta.pile_set_name", skip_bad=skip_bad)
        assert "f.jsonl:3:" in message and repr(value) in message
        assert "cannot be a domain name" in message


@pytest.mark.parametrize("folder", [" lead", "a\\b", "tab\tname"])
def test_unsafe_domain_folder(tmp_path: Path, folder: str) -> None:
    write_jsonl(tmp_path / "s" / folder / "a.jsonl", texts(["x"]))
    message = error_of(tmp_path / "s")
    assert repr(folder) in message and "Rename the folder" in message


# ----- layout errors -------------------------------------------------------------------------------


def test_missing_source(tmp_path: Path) -> None:
    message = error_of(tmp_path / "nope")
    assert "nope: no such file or folder" in message


def test_empty_source(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    message = error_of(tmp_path / "empty")
    assert message.startswith(f"{tmp_path / 'empty'}: no documents found (looked for")
    message = error_of(tmp_path / "empty", domain_field="meta.x")
    assert "no documents found" in message and "*.jsonl" in message


def test_source_with_only_empty_documents(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "f.jsonl", [pile("A", " ")])
    message = error_of(tmp_path / "f.jsonl", domain_field="meta.pile_set_name")
    assert "f.jsonl: no documents found (1 records were skipped" in message


def test_empty_split_folder(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "s" / "train" / "a.jsonl", [pile("A", "t")])
    (tmp_path / "s" / "validation").mkdir()
    message = error_of(tmp_path / "s", domain_field="meta.pile_set_name")
    assert f"{tmp_path / 's' / 'validation'}: no documents found" in message


def test_empty_domain_folder(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "s" / "a" / "x.jsonl", texts(["x"]))
    (tmp_path / "s" / "b" / "nested").mkdir(parents=True)
    message = error_of(tmp_path / "s")
    assert f"{tmp_path / 's' / 'b'}: domain folder 'b' has no documents" in message
    write_jsonl(tmp_path / "s" / "b" / "y.jsonl", texts(["", ""]))
    message = error_of(tmp_path / "s")
    assert "domain folder 'b' has no documents (2 records were skipped" in message


def test_unsupported_file_type(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "s" / "d" / "a.jsonl", texts(["x"]))
    (tmp_path / "s" / "d" / "notes.md").write_text("hi")
    message = error_of(tmp_path / "s")
    assert "notes.md: unsupported file type" in message
    assert "*.jsonl" in message and "*.parquet" in message and "*.txt" in message


def test_files_directly_in_source_with_folder_domains(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "s" / "d" / "a.jsonl", texts(["x"]))
    write_jsonl(tmp_path / "s" / "stray.jsonl", texts(["y"]))
    message = error_of(tmp_path / "s")
    assert "stray.jsonl" in message and "<domain>" in message and "--domain-field" in message
    write_jsonl(tmp_path / "t" / "train" / "a.jsonl", texts(["t"]))
    write_jsonl(tmp_path / "t" / "validation" / "a.jsonl", texts(["v"]))
    message = error_of(tmp_path / "t")
    assert f"{tmp_path / 't' / 'train' / 'a.jsonl'}: a file directly in" in message


def test_single_file_needs_domain_field(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "f.jsonl", texts(["x"]))
    message = error_of(path)
    assert "f.jsonl" in message and "SOURCE/<domain>/" in message and "--domain-field" in message


def test_hf_dataset_without_domain_folders(tmp_path: Path) -> None:
    message = error_of(write_hf(tmp_path / "ds", texts(["x"])))
    assert "ds: this Hugging Face dataset has no domain folders" in message
    message = error_of(write_hf_dict(tmp_path / "dd", {"train": texts(["x"])}))
    assert "dd: this Hugging Face DatasetDict" in message and "--domain-field" in message


def test_dataset_dict_inside_a_domain_folder(tmp_path: Path) -> None:
    write_hf_dict(tmp_path / "s" / "d", {"train": texts(["x"])})
    message = error_of(tmp_path / "s")
    assert "DatasetDict cannot be read here" in message


def test_txt_with_domain_field(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "doc.txt").write_text("x")
    message = error_of(tmp_path / "s", domain_field="meta.x")
    assert "doc.txt: a .txt file" in message and "--domain-field" in message


def test_both_val_and_validation(tmp_path: Path) -> None:
    for split in ("train", "val", "validation"):
        write_jsonl(tmp_path / "s" / split / "d" / "a.jsonl", texts(["x"]))
    assert "both validation/ and val/" in error_of(tmp_path / "s")


@pytest.mark.parametrize("suffix", [".gz", ".zst"])
def test_truncated_compressed_file(tmp_path: Path, suffix: str) -> None:
    path = write_jsonl(tmp_path / "s" / "d" / f"a.jsonl{suffix}", texts(["x" * 1000] * 50))
    path.write_bytes(path.read_bytes()[:-20])
    message = error_of(tmp_path / "s")
    assert f"a.jsonl{suffix}: cannot read" in message and "truncated or corrupt" in message


def test_not_really_compressed(tmp_path: Path) -> None:
    path = tmp_path / "s" / "d" / "a.jsonl.zst"
    path.parent.mkdir(parents=True)
    path.write_text('{"text": "plain"}\n')
    assert "a.jsonl.zst: cannot read the zstd data" in error_of(tmp_path / "s")


def test_corrupt_parquet_and_hf(tmp_path: Path) -> None:
    path = tmp_path / "s" / "d" / "x.parquet"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not parquet at all")
    assert "x.parquet: cannot read the Parquet file" in error_of(tmp_path / "s")

    folder = write_hf(tmp_path / "h" / "d", texts(["x"]))
    for arrow in folder.glob("*.arrow"):
        arrow.write_bytes(b"garbage")
    assert re.search(r"d: cannot load the Hugging Face dataset", error_of(tmp_path / "h"))


@pytest.mark.parametrize("field", ["", "meta.", "a..b"])
def test_bad_field_paths(tmp_path: Path, field: str) -> None:
    write_jsonl(tmp_path / "s" / "d" / "a.jsonl", texts(["x"]))
    assert "is not a field path" in error_of(tmp_path / "s", text_field=field)
    assert "is not a field path" in error_of(tmp_path / "s", domain_field=field)


def test_user_error_only(tmp_path: Path) -> None:
    """A zoo of broken inputs raises nothing but UserError."""
    src = tmp_path / "s"
    write_lines(src / "d" / "a.jsonl", ["[" * 100_000])  # deeper than the JSON parser recurses
    assert "a.jsonl:1: malformed JSON" in error_of(src)
