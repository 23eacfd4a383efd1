"""Tests for `mixtune prepare` (mixtune.data.prepare): raw sources -> a dataset directory.

Every corpus is generated in tmp_path. Counts and token files are checked against an independent
re-tokenization with the saved tokenizer; bad input must give exit code 2, a message naming the
file:line or field/value, no traceback, and nothing at --out (nor a staging folder beside it).
"""

from __future__ import annotations

import gzip
import json
import logging
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import zstandard
from tokenizers import Tokenizer

from mixtune.cli import main
from mixtune.data import store
from mixtune.data import tokenize as tokenize_mod
from mixtune.data.prepare import PrepareOptions, prepare
from mixtune.data.tokenize import hash_unit
from mixtune.data.tokenizer import EOS

VOCAB = 320  # 256 bytes + EOS + a few merges: trains in milliseconds
SEQ = 16
PILE_FIELD = "meta.pile_set_name"

# ----- helpers -------------------------------------------------------------------------------------

WORDS = {
    "web": [
        "the",
        "of",
        "and",
        "to",
        "in",
        "is",
        "for",
        "on",
        "that",
        "with",
        "home",
        "news",
        "click",
        "here",
        "page",
    ],
    "code": [
        "def",
        "return",
        "if",
        "else",
        "for",
        "while",
        "import",
        "class",
        "self",
        "none",
        "true",
        "false",
    ],
    "books": [
        "once",
        "upon",
        "time",
        "king",
        "queen",
        "forest",
        "castle",
        "night",
        "dragon",
        "river",
    ],
}


def make_texts(
    rng: random.Random, n: int, words: list[str], min_words=8, max_words=30
) -> list[str]:
    return [
        " ".join(rng.choice(words) for _ in range(rng.randint(min_words, max_words)))
        + rng.choice([".", "!\n", "?", "\n\nend ü€"])
        for _ in range(n)
    ]


def write_lines(path: Path, lines: list[str | bytes]) -> Path:
    """Raw lines to `path`, compressed according to its suffix (.zst, .gz or none)."""
    data = b"".join((x if isinstance(x, bytes) else x.encode()) + b"\n" for x in lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    elif path.suffix == ".zst":
        data = zstandard.ZstdCompressor().compress(data)
    path.write_bytes(data)
    return path


def write_docs(path: Path, texts: list[str]) -> Path:
    return write_lines(path, [json.dumps({"text": t}) for t in texts])


def run_cli(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()  # drop anything printed before
    rc = main(["prepare", *map(str, args)])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_nothing_left(out: Path) -> None:
    """--out absent and no staging (`.NAME.*.tmp`) or replaced (`.NAME.old`) folder beside it."""
    assert not out.exists()
    leftovers = [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]
    assert leftovers == []


def all_files(root: Path) -> dict[str, int]:
    """Relative path -> mtime_ns of every file and folder below `root`."""
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*"))}


def encode(tok: Tokenizer, texts: list[str], eos_id: int) -> np.ndarray:
    """The ids the dataset should hold: each document's ids followed by EOS, in order."""
    ids: list[int] = []
    for t in texts:
        ids += tok.encode(t, add_special_tokens=False).ids + [eos_id]
    return np.array(ids, dtype=np.int64)


def bin_tokens(out: Path, split: str, domain: str) -> np.ndarray:
    return np.fromfile(out / split / f"{domain}.bin", dtype="<u2").astype(np.int64)


def manifest(out: Path) -> dict:
    return json.loads((out / store.MANIFEST).read_text())


def opts(sources, out, **kw) -> PrepareOptions:
    kw.setdefault("vocab_size", VOCAB)
    kw.setdefault("seq_len", SEQ)
    return PrepareOptions(sources=[str(s) for s in sources], out=str(out), **kw)


# ----- corpora -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def split_corpus(tmp_path_factory) -> tuple[Path, dict[tuple[str, str], list[str]]]:
    """ROOT/{train,validation}/<domain>/*.jsonl.zst; returns ROOT and the texts in source order."""
    root = tmp_path_factory.mktemp("split") / "corpus"
    rng = random.Random(0)
    texts: dict[tuple[str, str], list[str]] = {}
    for split, n in (("train", 40), ("validation", 8)):
        for domain, words in WORDS.items():
            docs = make_texts(rng, n, words)
            # Two files per domain: documents are read in file-name order.
            write_docs(root / split / domain / "part-01.jsonl.zst", docs[n // 2 :])
            write_docs(root / split / domain / "part-00.jsonl.zst", docs[: n // 2])
            texts[(split, domain)] = docs
    return root, texts


def pile_records(n_per_domain: int, seed: int = 1) -> list[dict]:
    """Records with the domain in meta.pile_set_name, domains interleaved (as in the Pile)."""
    rng = random.Random(seed)
    names = {"web": "Pile-CC", "code": "Github", "books": "Books3 & more"}  # spaces are fine
    records = [
        {"text": t, "meta": {"pile_set_name": names[d]}}
        for d, words in WORDS.items()
        for t in make_texts(rng, n_per_domain, words, 3, 12)
    ]
    rng.shuffle(records)
    return records


def write_pile(root: Path, records: list[dict], shards: int = 3) -> Path:
    for s in range(shards):
        write_lines(root / f"{s:02d}.jsonl.gz", [json.dumps(r) for r in records[s::shards]])
    return root


@pytest.fixture(scope="module")
def pile_corpus(tmp_path_factory) -> tuple[Path, list[dict]]:
    root = tmp_path_factory.mktemp("pile") / "pile"
    records = pile_records(130)
    write_pile(root, records)
    # The order prepare reads them in: shard files sorted by name, lines in order.
    ordered = [r for s in range(3) for r in records[s::3]]
    return root, ordered


# ----- the folder layout ---------------------------------------------------------------------------


def test_split_folders_manifest_and_token_files(tmp_path, capsys, split_corpus):
    root, texts = split_corpus
    out = tmp_path / "ds"
    rc, stdout, err = run_cli(capsys, root, "--out", out, "--vocab-size", VOCAB, "--seq-len", SEQ)
    assert rc == 0, err
    assert "Traceback" not in err
    m = manifest(out)
    assert m["domains"] == sorted(WORDS) == ["books", "code", "web"]
    assert m["dtype"] == "<u2" and m["seq_len"] == SEQ
    assert m["skipped_total"] == 0 and m["skipped_outside_domains"] == []

    tok = Tokenizer.from_file(str(out / "tokenizer" / "tokenizer.json"))
    eos_id = tok.token_to_id(EOS)
    assert m["tokenizer"]["eos_id"] == eos_id
    assert m["tokenizer"]["vocab_size"] == tok.get_vocab_size(with_added_tokens=True) == VOCAB
    assert m["tokenizer"]["sha256"] == store.file_sha256(out / "tokenizer" / "tokenizer.json")

    for (split, domain), docs in texts.items():
        expected = encode(tok, docs, eos_id)
        entry = m["splits"][split][domain]
        assert entry["documents"] == len(docs)
        assert entry["tokens"] == len(expected)
        assert entry["sequences"] == (len(expected) - 1) // SEQ
        assert entry["skipped"] == {}
        got = bin_tokens(out, split, domain)
        np.testing.assert_array_equal(got, expected)  # EOS after every document, source order
        # The same through the reader the sampler uses.
        np.testing.assert_array_equal(store.open_dataset(out).tokens(split, domain), expected)
        assert tok.decode(got[: np.flatnonzero(got == eos_id)[0]].tolist()) == docs[0]

    # The printed summary names every domain; nothing is left beside the dataset.
    for domain in WORDS:
        assert domain in stdout
    assert sorted(p.name for p in out.parent.iterdir()) == ["ds"]

    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(out / "tokenizer"))
    assert hf.eos_token == EOS and hf.eos_token_id == eos_id
    sample = texts[("train", "code")][0]
    assert hf(sample, add_special_tokens=False)["input_ids"] == tok.encode(sample).ids


# ----- the Pile layout: a domain field and a hash split --------------------------------------------


def expected_hash_split(records: list[dict], fraction: float) -> dict[str, dict[str, list[str]]]:
    """split -> domain -> texts, computed from hash_unit and the at-least-one-validation rule."""
    by_domain: dict[str, list[str]] = {}
    for r in records:
        by_domain.setdefault(r["meta"]["pile_set_name"], []).append(r["text"])
    result: dict[str, dict[str, list[str]]] = {"train": {}, "validation": {}}
    for d, docs in by_domain.items():
        val = [hash_unit(t) < fraction for t in docs]
        if not any(val):  # the document with the smallest hash moves over
            val[min(range(len(docs)), key=lambda i: hash_unit(docs[i]))] = True
        result["validation"][d] = [t for t, v in zip(docs, val, strict=True) if v]
        result["train"][d] = [t for t, v in zip(docs, val, strict=True) if not v]
    return result


@pytest.mark.parametrize("fraction", [0.2, 0.001])
def test_hash_split(tmp_path, pile_corpus, fraction):
    root, records = pile_corpus
    out = prepare(
        opts([root], tmp_path / "ds", domain_field=PILE_FIELD, validation_fraction=fraction)
    )
    m = manifest(out)
    expected = expected_hash_split(records, fraction)
    assert m["domains"] == sorted(expected["train"])
    tok = Tokenizer.from_file(str(out / "tokenizer" / "tokenizer.json"))
    eos_id = tok.token_to_id(EOS)
    for split in store.SPLITS:
        for d in m["domains"]:
            docs = expected[split][d]
            assert m["splits"][split][d]["documents"] == len(docs)
            np.testing.assert_array_equal(bin_tokens(out, split, d), encode(tok, docs, eos_id))
    val = sum(m["splits"]["validation"][d]["documents"] for d in m["domains"])
    if fraction == 0.2:  # 390 documents: about 78 in validation
        assert 0.1 * len(records) < val < 0.3 * len(records)
    else:  # at least (and here about) one validation document per domain
        assert all(m["splits"]["validation"][d]["documents"] >= 1 for d in m["domains"])
        assert val <= 2 * len(m["domains"])


def test_hash_split_is_deterministic(tmp_path, pile_corpus):
    root, _ = pile_corpus
    a = prepare(opts([root], tmp_path / "a", domain_field=PILE_FIELD))
    b = prepare(opts([root], tmp_path / "b", domain_field=PILE_FIELD))
    files = sorted(str(p.relative_to(a)) for p in a.rglob("*.bin"))
    assert len(files) == 2 * 3
    for rel in files + ["tokenizer/tokenizer.json"]:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_duplicates_never_straddle_the_split(tmp_path):
    texts = make_texts(random.Random(5), 60, WORDS["web"])
    records = [{"text": t, "meta": {"pile_set_name": "web"}} for t in texts + texts[::-1]]
    out = prepare(
        opts([write_pile(tmp_path / "src", records, 1)], tmp_path / "ds", domain_field=PILE_FIELD)
    )
    m = manifest(out)
    assert m["splits"]["validation"]["web"]["documents"] % 2 == 0
    assert m["splits"]["train"]["web"]["documents"] % 2 == 0


def test_single_document_domain_is_an_error(tmp_path, capsys):
    records = pile_records(20)
    records.append({"text": "a lonely document " * 20, "meta": {"pile_set_name": "Lonely"}})
    src = write_pile(tmp_path / "src", records)
    out = tmp_path / "ds"
    rc, _, err = run_cli(
        capsys,
        src,
        "--out",
        out,
        "--domain-field",
        PILE_FIELD,
        "--vocab-size",
        VOCAB,
        "--seq-len",
        SEQ,
    )
    assert rc == 2
    assert "Lonely" in err and "no training documents" in err and "Traceback" not in err
    assert_nothing_left(out)


# ----- an existing tokenizer -----------------------------------------------------------------------


def test_existing_tokenizer_is_used_not_trained(tmp_path, monkeypatch, split_corpus):
    root, _ = split_corpus
    first = prepare(opts([root], tmp_path / "first"))

    def no_training(*a, **k):
        raise AssertionError("--tokenizer was given: nothing should be trained")

    monkeypatch.setattr(tokenize_mod, "train_bpe", no_training)
    second = prepare(opts([root], tmp_path / "second", tokenizer=str(first / "tokenizer")))
    m1, m2 = manifest(first), manifest(second)
    assert m2["tokenizer"]["sha256"] == m1["tokenizer"]["sha256"]
    assert m2["tokenizer"]["eos_id"] == m1["tokenizer"]["eos_id"]
    assert m2["splits"] == m1["splits"]
    for p in first.rglob("*.bin"):
        assert p.read_bytes() == (second / p.relative_to(first)).read_bytes()

    # A bare tokenizer.json works too and gives the same token ids.
    third = prepare(
        opts([root], tmp_path / "third", tokenizer=str(first / "tokenizer" / "tokenizer.json"))
    )
    assert manifest(third)["splits"] == m1["splits"]
    assert (third / "train" / "web.bin").read_bytes() == (first / "train" / "web.bin").read_bytes()


# ----- reruns --------------------------------------------------------------------------------------


def test_rerun_skips_refuses_or_overwrites(tmp_path, capsys, caplog, split_corpus):
    root, _ = split_corpus
    out = tmp_path / "ds"
    args = [root, "--out", out, "--vocab-size", VOCAB, "--seq-len", SEQ]
    assert run_cli(capsys, *args)[0] == 0
    before = all_files(out)

    caplog.set_level(logging.INFO, logger="mixtune")
    rc, _, err = run_cli(capsys, *args)
    assert rc == 0, err
    assert "already complete" in caplog.text + err
    assert all_files(out) == before

    rc, _, err = run_cli(capsys, *args[:-1], SEQ * 2)  # another --seq-len
    assert rc == 2
    assert "other options" in err and "--overwrite" in err and "Traceback" not in err
    assert all_files(out) == before

    rc, _, err = run_cli(capsys, *args[:-1], SEQ * 2, "--overwrite")
    assert rc == 0, err
    assert manifest(out)["seq_len"] == SEQ * 2
    assert sorted(p.name for p in out.parent.iterdir()) == ["ds"]  # no staging or old folder


def test_out_that_is_not_a_dataset_is_refused(tmp_path, capsys, split_corpus):
    root, _ = split_corpus
    for out in (tmp_path / "folder", tmp_path / "file"):
        if out.name == "folder":
            out.mkdir()
            (out / "precious.txt").write_text("keep me")
        else:
            out.write_text("keep me")
        rc, _, err = run_cli(capsys, root, "--out", out, "--vocab-size", VOCAB)
        assert rc == 2 and "not a dataset" in err and "Traceback" not in err
        assert "keep me" in (out / "precious.txt" if out.is_dir() else out).read_text()
        # --overwrite replaces it, file or folder, and leaves no `.NAME.old` behind.
        args = (root, "--out", out, "--vocab-size", VOCAB, "--seq-len", SEQ, "--overwrite")
        rc, _, err = run_cli(capsys, *args)
        assert rc == 0, err
        assert (out / store.MANIFEST).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder"]


# ----- bad input -----------------------------------------------------------------------------------


def good_domain(root: Path, domain: str = "web", n: int = 30) -> None:
    write_docs(root / domain / "a.jsonl.zst", make_texts(random.Random(2), n, WORDS["web"]))


def bad_line(root: Path, line: str | bytes, lineno: int = 3) -> Path:
    good_domain(root)
    lines: list[str | bytes] = [json.dumps({"text": f"fine text number {i}"}) for i in range(5)]
    lines[lineno - 1] = line
    return write_lines(root / "code" / "b.jsonl", lines)


def case_malformed_json(root):
    path = bad_line(root, '{"text": "oops"', 3)
    return [root], [f"{path}:3", "malformed JSON"]


def case_non_utf8(root):
    path = bad_line(root, b'{"text": "caf\xe9"}', 2)
    return [root], [f"{path}:2", "invalid UTF-8", "0xe9"]


def case_missing_text(root):
    path = bad_line(root, json.dumps({"body": "no text here"}), 4)
    return [root], [f"{path}:4", "missing text field", "'text'", "'body'"]


def case_missing_domain_field(root):
    records = pile_records(10)
    records[7] = {"text": "where am I", "meta": {}}
    write_lines(root / "s.jsonl", [json.dumps(r) for r in records])
    return [root, "--domain-field", PILE_FIELD], [
        f"{root / 's.jsonl'}:8",
        "missing domain field",
        PILE_FIELD,
    ]


def case_unsafe_domain(root):
    records = pile_records(10)
    records[4] = {"text": "escape", "meta": {"pile_set_name": "../evil"}}
    write_lines(root / "s.jsonl", [json.dumps(r) for r in records])
    return [root, "--domain-field", PILE_FIELD], [
        f"{root / 's.jsonl'}:5",
        "'../evil'",
        "cannot be a domain name",
    ]


def case_empty_source(root):
    root.mkdir(parents=True)
    return [root], [str(root), "no documents found"]


def case_missing_source(root):
    return [root / "nope"], [str(root / "nope"), "no such file or folder"]


def case_too_few_tokens(root):
    good_domain(root)
    write_docs(root / "tiny" / "a.jsonl", ["hi", "yo"])  # a few tokens: no 17-token window
    return [root], ["tiny", "fewer than seq_len + 1 = 17", "--seq-len"]


def case_bad_fraction(root):
    good_domain(root)
    return [root, "--validation-fraction", "1.5"], ["--validation-fraction 1.5"]


def case_small_vocab(root):
    good_domain(root)
    return [root, "--vocab-size", "100"], ["--vocab-size 100"]


def case_bad_tokenizer(root):
    good_domain(root)
    return [root, "--tokenizer", root / "web"], ["--tokenizer", "no tokenizer.json"]


BAD_INPUTS = [
    case_malformed_json,
    case_non_utf8,
    case_missing_text,
    case_missing_domain_field,
    case_unsafe_domain,
    case_empty_source,
    case_missing_source,
    case_too_few_tokens,
    case_bad_fraction,
    case_small_vocab,
    case_bad_tokenizer,
]


@pytest.mark.parametrize("case", BAD_INPUTS, ids=lambda c: c.__name__[5:])
def test_bad_input_fails_cleanly(tmp_path, capsys, case):
    args, needles = case(tmp_path / "src")
    out = tmp_path / "ds"
    # The case's own options come last, so they win over the defaults.
    rc, _, err = run_cli(capsys, "--out", out, "--vocab-size", VOCAB, "--seq-len", SEQ, *args)
    assert rc == 2, err
    assert err.startswith("mixtune: error:") or "\nmixtune: error:" in err, err
    for needle in needles:
        assert needle in err, (needle, err)
    assert "Traceback" not in err
    assert_nothing_left(out)
    assert not list(tmp_path.rglob("evil*"))


def test_failure_while_writing_removes_the_staging_folder(tmp_path, monkeypatch, split_corpus):
    root, _ = split_corpus
    calls = Counter()

    def failing_write(self, ids, documents=1):
        calls["write"] += 1
        raise KeyboardInterrupt  # as if the user pressed Ctrl-C in the tokenize pass

    monkeypatch.setattr(store.TokenWriter, "write", failing_write)
    out = tmp_path / "ds"
    with pytest.raises(KeyboardInterrupt):
        prepare(opts([root], out))
    assert calls["write"] == 1
    assert_nothing_left(out)


# ----- --skip-bad-records --------------------------------------------------------------------------


def test_skip_bad_records_counts_reasons(tmp_path, capsys):
    root = tmp_path / "src"
    rng = random.Random(3)
    good = {s: make_texts(rng, n, WORDS["web"]) for s, n in (("train", 30), ("validation", 5))}
    write_lines(
        root / "train" / "web" / "a.jsonl",
        [json.dumps({"text": t}) for t in good["train"][:10]]
        + [
            '{"text": broken',
            b'{"text": "\xff"}',
            json.dumps({"body": "x"}),
            json.dumps({"text": "  "}),
        ]
        + [json.dumps({"text": t}) for t in good["train"][10:]],
    )
    write_lines(
        root / "validation" / "web" / "a.jsonl",
        ["[1, 2"] + [json.dumps({"text": t}) for t in good["validation"]],
    )
    out = tmp_path / "ds"
    rc, stdout, err = run_cli(
        capsys, root, "--out", out, "--vocab-size", VOCAB, "--seq-len", SEQ, "--skip-bad-records"
    )
    assert rc == 0, err
    m = manifest(out)
    assert m["splits"]["train"]["web"]["skipped"] == {
        "empty text": 1,
        "invalid UTF-8": 1,
        "malformed JSON": 1,
        "missing text field": 1,
    }
    assert m["splits"]["validation"]["web"]["skipped"] == {"malformed JSON": 1}
    assert m["splits"]["train"]["web"]["documents"] == 30
    assert m["splits"]["validation"]["web"]["documents"] == 5
    assert m["skipped_total"] == 5 and m["skipped_outside_domains"] == []
    assert "skipped records: 5" in stdout
    tok = Tokenizer.from_file(str(out / "tokenizer" / "tokenizer.json"))
    np.testing.assert_array_equal(
        bin_tokens(out, "train", "web"), encode(tok, good["train"], tok.token_to_id(EOS))
    )


def test_skip_bad_records_with_domain_field(tmp_path):
    records = pile_records(20)
    lines = [json.dumps(r) for r in records]
    lines[3] = "{not json"  # domain unknown
    lines[5] = json.dumps({"text": "no domain", "meta": {"other": 1}})  # domain unknown
    lines[8] = json.dumps({"meta": {"pile_set_name": "Github"}})  # domain known, split not
    root = tmp_path / "src"
    write_lines(root / "a.jsonl", lines)
    # With split folders the split is known; "Ghost" has only a bad record, so is no domain.
    write_lines(
        root.parent / "split" / "train" / "x.jsonl",
        [json.dumps(r) for r in records[:30]] + [json.dumps({"meta": {"pile_set_name": "Ghost"}})],
    )
    write_lines(
        root.parent / "split" / "validation" / "x.jsonl", [json.dumps(r) for r in records[30:]]
    )

    out = prepare(opts([root], tmp_path / "ds", domain_field=PILE_FIELD, skip_bad_records=True))
    m = manifest(out)
    assert m["domains"] == ["Books3 & more", "Github", "Pile-CC"]
    outside = {
        (e["split"], e["domain"], e["reason"]): e["count"] for e in m["skipped_outside_domains"]
    }
    assert outside == {
        (None, None, "malformed JSON"): 1,
        (None, None, "missing domain field"): 1,
        (None, "Github", "missing text field"): 1,  # a hash split needs the text to pick a split
    }
    assert m["skipped_total"] == 3
    assert sum(m["splits"][s][d]["documents"] for s in store.SPLITS for d in m["domains"]) == 57

    out = prepare(
        opts(
            [root.parent / "split"],
            tmp_path / "ds2",
            domain_field=PILE_FIELD,
            skip_bad_records=True,
        )
    )
    m = manifest(out)
    assert "Ghost" not in m["domains"]
    assert m["skipped_total"] == 1
    # Every skipped record is reported somewhere: per split and domain, or outside the domains.
    assert m["skipped_outside_domains"] == [
        {"split": "train", "domain": "Ghost", "reason": "missing text field", "count": 1}
    ]


# ----- the command line ----------------------------------------------------------------------------


def test_prepare_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["prepare", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in (
        "--out",
        "--domain-field",
        "--validation-fraction",
        "--tokenizer",
        "--skip-bad-records",
        "--overwrite",
    ):
        assert option in text


def test_train_folder_without_validation_warns(tmp_path, caplog):
    import logging

    from mixtune.data.prepare import PrepareOptions, prepare

    src = tmp_path / "src" / "train"
    src.mkdir(parents=True)
    (src / "a.jsonl").write_text(
        "".join(json.dumps({"text": f"document number {i} " * 20}) + "\n" for i in range(40))
    )
    with caplog.at_level(logging.WARNING, logger="mixtune.data.prepare"):
        prepare(
            PrepareOptions(
                sources=[str(tmp_path / "src")],
                out=str(tmp_path / "out"),
                vocab_size=300,
                seq_len=16,
            )
        )
    assert "domain(s) named train" in caplog.text


def test_forced_validation_document_takes_its_duplicates_along(tmp_path, caplog):
    from mixtune.data.prepare import PrepareOptions, prepare
    from mixtune.data.store import open_dataset

    src = tmp_path / "src" / "licenses"
    src.mkdir(parents=True)
    a, b = "license text alpha " * 30, "license text beta " * 30
    (src / "a.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in (a, b, a, b)))
    out = prepare(
        PrepareOptions(
            sources=[str(tmp_path / "src")],
            out=str(tmp_path / "out"),
            vocab_size=300,
            seq_len=16,
            validation_fraction=1e-9,
        )
    )
    m = open_dataset(out).manifest.splits
    # Nothing falls under the tiny fraction, so the document closest to it moves, with its copy.
    assert m["validation"]["licenses"].documents == 2
    assert m["train"]["licenses"].documents == 2
    assert "one domain only (licenses): there is no mixture to choose" in caplog.text
