"""Exact duplicate documents counted by `mixtune prepare` (tokenize.Hashes): per split and domain,
`duplicates` (documents whose exact text came earlier in the same split and domain) and, for
validation, `in_train` (documents whose exact text is in the domain's training split), the same
whatever the number of tasks; manifests without them still open (None: unknown)."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from mixtune.data import store
from mixtune.data import tokenize as tokenize_mod
from mixtune.data.prepare import prepare, summary_lines
from mixtune.data.tokenize import hash_unit
from mixtune.errors import UserError
from tests.data.test_prepare import (
    PILE_FIELD,
    WORDS,
    make_texts,
    manifest,
    opts,
    run_cli,
    write_docs,
    write_pile,
)


def expected(texts: dict[tuple[str, str], list[str]]) -> dict[tuple[str, str], dict[str, int]]:
    """(split, domain) -> the counts, from the texts of each split and domain."""
    out = {}
    for (split, d), docs in texts.items():
        out[(split, d)] = {"documents": len(docs), "duplicates": len(docs) - len(set(docs))}
        if split == "validation":
            train = set(texts[("train", d)])
            out[(split, d)]["in_train"] = sum(t in train for t in docs)
    return out


def found(m: dict) -> dict[tuple[str, str], dict[str, int]]:
    keys = ("documents", "duplicates", "in_train")
    return {(s, d): {k: e[k] for k in keys if k in e}
            for s, entries in m["splits"].items() for d, e in entries.items()}


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> tuple[Path, dict[tuple[str, str], list[str]]]:
    """ROOT/{train,validation}/<domain>/part-0<i>.jsonl: web has copies planted across files,
    within each split and from train into validation; code has none."""
    root = tmp_path_factory.mktemp("dups") / "corpus"
    rng = random.Random(3)
    web_train, web_val = make_texts(rng, 40, WORDS["web"]), make_texts(rng, 8, WORDS["web"])
    texts = {
        ("train", "web"): web_train + [web_train[0]] * 3 + [web_train[1]],  # 4 duplicates
        # 2 duplicates (val[0] again, train[2] again); 3 documents also in train
        ("validation", "web"): web_val + [web_val[0], web_train[2], web_train[3], web_train[2]],
        ("train", "code"): make_texts(rng, 30, WORDS["code"]),
        ("validation", "code"): make_texts(rng, 6, WORDS["code"]),
    }
    for (split, domain), docs in texts.items():
        for i in range(3):  # copies land in different files, so in different tasks
            write_docs(root / split / domain / f"part-{i:02d}.jsonl", docs[i::3])
    in_file_order = {k: [t for i in range(3) for t in docs[i::3]] for k, docs in texts.items()}
    return root, in_file_order


def test_planted_duplicates_are_counted(tmp_path, planted):
    root, texts = planted
    m = manifest(prepare(opts([root], tmp_path / "ds")))
    assert found(m) == expected(texts)
    assert m["splits"]["train"]["web"]["duplicates"] == 4
    assert m["splits"]["validation"]["web"]["duplicates"] == 2
    assert m["splits"]["validation"]["web"]["in_train"] == 3
    assert "in_train" not in m["splits"]["train"]["web"]


def test_counts_are_the_same_in_tasks(tmp_path, planted):
    """Copies in files of different tasks count: the scan runs before the tasks, in one process."""
    pytest.importorskip("datatrove")
    root, texts = planted
    m = manifest(prepare(opts([root], tmp_path / "ds", tasks=3, workers=1)))
    assert found(m) == expected(texts)


def hash_split(texts: list[str], fraction: float) -> tuple[list[str], list[str]]:
    """(train, validation) of one domain's texts, by the hash split's rule: validation below the
    fraction, else the text(s) with the smallest hash, every copy of them."""
    val = [t for t in texts if hash_unit(t) < fraction]
    if not val:
        lowest = min(map(hash_unit, texts))
        val = [t for t in texts if hash_unit(t) <= lowest]
    return [t for t in texts if t not in val], val


@pytest.mark.parametrize("fraction", [0.3, 0.001])
def test_hash_split_duplicates(tmp_path, fraction):
    """Copies land in one split; at 0.001 the text with the smallest hash moves to validation with
    all its copies (planted three times), and out of the training counts."""
    rng = random.Random(11)
    by_domain = {}
    for d in ("web", "books"):
        docs = make_texts(rng, 30, WORDS[d])
        lowest = min(docs, key=hash_unit)
        by_domain[d] = docs + [lowest, lowest, docs[5], docs[7], docs[5]]
    records = [{"text": t, "meta": {"pile_set_name": d}} for d, docs in by_domain.items()
               for t in docs]
    random.Random(0).shuffle(records)
    src = write_pile(tmp_path / "src", records, shards=2)
    m = manifest(prepare(opts([src], tmp_path / "ds", domain_field=PILE_FIELD,
                              validation_fraction=fraction)))
    texts = {}
    for d in by_domain:
        in_order = [r["text"] for s in range(2) for r in records[s::2]
                    if r["meta"]["pile_set_name"] == d]
        texts[("train", d)], texts[("validation", d)] = hash_split(in_order, fraction)
    assert found(m) == expected(texts)
    assert all(m["splits"]["validation"][d]["in_train"] == 0 for d in by_domain)
    if fraction == 0.001:
        assert all(m["splits"]["validation"][d]["documents"] == 3 for d in by_domain)
        assert all(m["splits"]["validation"][d]["duplicates"] == 2 for d in by_domain)


def test_read_back_printed_and_old_manifests_open(tmp_path, capsys, planted):
    root, _ = planted
    out = tmp_path / "ds"
    rc, stdout, err = run_cli(capsys, root, "--out", out, "--vocab-size", 320, "--seq-len", 16)
    assert rc == 0, err
    assert ("exact duplicates: 4 training and 2 validation documents repeat an earlier one's text; "
            "3 validation documents are also in training") in stdout
    ds = store.open_dataset(out)
    web = ds.manifest.splits["validation"]["web"]
    assert (web.duplicates, web.in_train) == (2, 3)
    assert ds.manifest.to_json()["splits"] == manifest(out)["splits"]  # a round trip

    # A manifest from before the counts: opens, the counts unknown, and none written back.
    old = manifest(out)
    for entries in old["splits"].values():
        for e in entries.values():
            e.pop("duplicates", None)
            e.pop("in_train", None)
    (out / store.MANIFEST).write_text(json.dumps(old))
    ds = store.open_dataset(out)
    web = ds.manifest.splits["validation"]["web"]
    assert (web.documents, web.duplicates, web.in_train) == (12, None, None)
    assert ds.manifest.to_json()["splits"] == old["splits"]
    assert not any("duplicates" in line for line in summary_lines(ds.manifest, out))

    old["splits"]["train"]["web"]["duplicates"] = "many"
    (out / store.MANIFEST).write_text(json.dumps(old))
    with pytest.raises(UserError, match="damaged.*duplicates"):
        store.open_dataset(out)


def test_past_the_memory_cap_nothing_is_counted(tmp_path, monkeypatch, planted):
    root, texts = planted
    monkeypatch.setattr(tokenize_mod, "DUPLICATE_COUNT_MAX_DOCS", 20)
    m = manifest(prepare(opts([root], tmp_path / "ds")))
    assert found(m) == {k: {"documents": v["documents"]} for k, v in expected(texts).items()}
    assert Counter(k for e in m["splits"]["train"].values() for k in e) == Counter(
        {"documents": 2, "tokens": 2, "sequences": 2, "skipped": 2})
