"""The report's notes on the data (report/data_notes.py), on constructed manifests: each note,
the all-clear, and a manifest from before prepare counted duplicates."""

from __future__ import annotations

import copy

import pytest

from mixtune.records import Manifest
from mixtune.report.data_notes import (
    FEW_TRAIN_DOCUMENTS,
    MAX_EPOCHS,
    MIN_VALIDATION_DOCUMENTS,
    MIN_VALIDATION_TOKENS,
    data_notes,
)


def entry(documents, tokens, duplicates=0, in_train=None) -> dict:
    e = {"documents": documents, "tokens": tokens, "sequences": tokens // 512, "skipped": {},
         "duplicates": duplicates}
    return e if in_train is None else {**e, "in_train": in_train}


def healthy() -> dict:
    """Two domains with large, clean validation sets."""
    return {
        "format_version": 1,
        "domains": ["books", "web"],
        "splits": {
            "train": {"books": entry(5_000, 40_000_000, duplicates=12),
                      "web": entry(90_000, 200_000_000, duplicates=300)},
            "validation": {"books": entry(200, 1_600_000, in_train=0),
                           "web": entry(1_000, 2_000_000, duplicates=3, in_train=0)},
        },
    }


MIXTURES = {"natural": {"books": 0.2, "web": 0.8}, "doremi": {"books": 0.35, "web": 0.65}}
MAIN = 100_000_000  # at most 0.875 epochs of books, 0.4 of web


def test_all_clear():
    assert data_notes(healthy(), MIXTURES, MAIN) == []
    assert data_notes(healthy(), MIXTURES, None) == []
    assert data_notes(healthy(), {}, MAIN) == []


def test_a_small_validation_set():
    m = healthy()
    m["domains"].append("perl_pod")
    m["splits"]["train"]["perl_pod"] = entry(400, 3_000_000)
    m["splits"]["validation"]["perl_pod"] = entry(1, 8_241, in_train=0)
    assert data_notes(m, MIXTURES, MAIN) == [
        "perl_pod: its validation set is 1 document (8,241 tokens): its per-domain and "
        "worst-case numbers rest on it"]
    # Either count under its threshold makes the set small; both at it do not.
    m["splits"]["validation"]["perl_pod"] = entry(MIN_VALIDATION_DOCUMENTS - 1, 10**6, in_train=0)
    assert data_notes(m, MIXTURES, MAIN) == [
        "perl_pod: its validation set is 19 documents (1,000,000 tokens): its per-domain and "
        "worst-case numbers rest on them"]
    m["splits"]["validation"]["perl_pod"] = entry(500, MIN_VALIDATION_TOKENS - 1, in_train=0)
    assert len(data_notes(m, MIXTURES, MAIN)) == 1
    m["splits"]["validation"]["perl_pod"] = entry(MIN_VALIDATION_DOCUMENTS, MIN_VALIDATION_TOKENS,
                                                  in_train=0)
    assert data_notes(m, MIXTURES, MAIN) == []


def test_no_validation_documents():
    m = healthy()
    m["splits"]["validation"]["books"] = entry(0, 0, in_train=0)
    assert data_notes(m, {}, None) == [
        "books: it has no validation documents: it has no per-domain number and the worst case "
        "leaves it out"]


def test_validation_duplicates_and_documents_also_in_training():
    m = healthy()
    m["splits"]["validation"]["web"] = entry(1_000, 2_000_000, duplicates=280, in_train=37)
    m["splits"]["validation"]["books"] = entry(200, 1_600_000, in_train=1)  # 0.5%: below 1%
    assert data_notes(m, MIXTURES, MAIN) == [
        "28% of the validation documents of web are exact duplicates (280 of 1,000): their texts "
        "count more than once in its validation loss",
        "37 validation documents of web (3.7%) are also in its training split: models score them "
        "better the more weight the domain gets",
    ]
    m["splits"]["validation"]["web"] = entry(1_000, 2_000_000, duplicates=49, in_train=10)
    assert data_notes(m, MIXTURES, MAIN) == [  # under 5% duplicates is within noise
        "10 validation documents of web (1.0%) are also in its training split: models score them "
        "better the more weight the domain gets"]


def few_documents() -> dict:
    m = healthy()
    m["domains"].append("perl_modules")
    m["splits"]["train"]["perl_modules"] = entry(10, 400_000)
    m["splits"]["validation"]["perl_modules"] = entry(50, 60_000, in_train=0)
    return m


def test_a_mixture_repeating_a_domain_of_few_documents():
    mixtures = {"doremi": {"books": 0.3, "perl_modules": 0.065, "web": 0.635},
                "natural": {"books": 0.2, "perl_modules": 0.001, "web": 0.799}}
    assert data_notes(few_documents(), mixtures, MAIN) == [
        "mixture doremi gives domain perl_modules (10 training documents, 400,000 tokens) 6.5% of "
        "the weight: about 16 passes over its training text in a main run of 100,000,000 tokens"]
    # Without a main run's size the passes are unknown; few documents at 6.5% are still noted.
    assert data_notes(few_documents(), mixtures, None) == [
        "mixture doremi gives domain perl_modules (10 training documents, 400,000 tokens) 6.5% of "
        "the weight: few documents to learn the domain from, repeated in any long run"]
    # Weights are normalised: the same mixture in percent gives the same note.
    percent = {"doremi": {d: 100 * w for d, w in mixtures["doremi"].items()}}
    assert data_notes(few_documents(), percent, MAIN) == data_notes(few_documents(),
                                                                    {"doremi": mixtures["doremi"]},
                                                                    MAIN)


def test_few_documents_at_few_epochs_and_many_documents_at_many_epochs():
    m = few_documents()
    m["splits"]["train"]["perl_modules"] = entry(FEW_TRAIN_DOCUMENTS - 1, 400_000_000)
    notes = data_notes(m, {"a": {"perl_modules": 0.02, "web": 0.98}}, MAIN)
    assert notes == ["mixture a gives domain perl_modules (49 training documents, 400,000,000 "
                     "tokens) 2.0% of the weight: less than 0.1 passes over its training text in a "
                     "main run of 100,000,000 tokens"]
    # Many documents, but more than MAX_EPOCHS passes: books at 0.9 of 10^9 tokens.
    notes = data_notes(healthy(), {"a": {"books": 0.9, "web": 0.1}}, 10**9)
    assert MAX_EPOCHS < 0.9 * 10**9 / 40_000_000
    assert notes == ["mixture a gives domain books (5,000 training documents, 40,000,000 tokens) "
                     "90% of the weight: about 22 passes over its training text in a main run of "
                     "1,000,000,000 tokens"]
    # 3.0 and 3.4 passes: within MAX_EPOCHS, but not within a run's own max_epochs of 2.
    assert data_notes(healthy(), {"a": {"books": 0.15, "web": 0.85}}, 8 * 10**8) == []
    notes = data_notes(healthy(), {"a": {"books": 0.15, "web": 0.85}}, 8 * 10**8, max_epochs=2)
    assert [n.split(": ")[1] for n in notes] == [
        "about 3.0 passes over its training text in a main run of 800,000,000 tokens",
        "about 3.4 passes over its training text in a main run of 800,000,000 tokens"]


def test_one_note_per_problem_sorted_by_domain():
    m = few_documents()
    m["splits"]["validation"]["books"] = entry(3, 20_000, duplicates=1, in_train=0)
    m["splits"]["validation"]["perl_modules"] = entry(5, 9_000, in_train=2)
    mixtures = {"b": {"perl_modules": 0.05, "web": 0.95}, "a": {"perl_modules": 0.1, "web": 0.9}}
    notes = data_notes(m, mixtures, MAIN)
    assert [n.split(" ")[:4] for n in notes] == [
        ["books:", "its", "validation", "set"],
        ["33%", "of", "the", "validation"],
        ["perl_modules:", "its", "validation", "set"],
        ["2", "validation", "documents", "of"],
        ["mixture", "a", "gives", "domain"],
        ["mixture", "b", "gives", "domain"],
    ]


def test_a_manifest_from_before_duplicates_were_counted():
    """No duplicates / in_train fields: unknown, so no duplicate notes; the others still come."""
    m = few_documents()
    m["splits"]["validation"]["perl_modules"] = entry(2, 9_000)
    for entries in m["splits"].values():
        for e in entries.values():
            e.pop("duplicates", None)
            e.pop("in_train", None)
    notes = data_notes(m, {"a": {"perl_modules": 0.1, "web": 0.9}}, MAIN)
    assert notes == [
        "perl_modules: its validation set is 2 documents (9,000 tokens): its per-domain and "
        "worst-case numbers rest on them",
        "mixture a gives domain perl_modules (10 training documents, 400,000 tokens) 10% of the "
        "weight: about 25 passes over its training text in a main run of 100,000,000 tokens",
    ]
    old = copy.deepcopy(healthy())
    for entries in old["splits"].values():
        for e in entries.values():
            e.pop("duplicates", None)
    assert data_notes(old, MIXTURES, MAIN) == []


def test_a_manifest_object_and_damaged_values():
    """The `Manifest` a dataset opens to gives the same notes; values that are not counts, or
    mixtures naming unknown domains, are passed over rather than raising."""
    m = few_documents()
    m["splits"]["validation"]["web"] = entry(1_000, 2_000_000, duplicates=280, in_train=0)
    m.update(seq_len=512, dtype="<u2", sources=[],
             tokenizer={"sha256": "0", "vocab_size": 320, "eos_id": 0, "source": "test"})
    mixtures = {"a": {"perl_modules": 0.1, "web": 0.9}}
    assert data_notes(Manifest.from_json(m), mixtures, MAIN) == data_notes(m, mixtures, MAIN)
    bad = copy.deepcopy(m)
    bad["splits"]["validation"]["web"]["duplicates"] = "many"
    bad["splits"]["train"]["perl_modules"]["tokens"] = None
    odd = {"a": {"perl_modules": "x", "web": float("nan"), "gone": 1.0}, "b": None}
    assert data_notes(bad, odd, MAIN) == []
    assert data_notes({}, {}, None) == []


@pytest.mark.parametrize("main_tokens", [None, 0])
def test_no_main_run_size_counts_no_passes(main_tokens):
    notes = data_notes(healthy(), {"a": {"books": 0.9, "web": 0.1}}, main_tokens)
    assert notes == []


def test_every_domain_small_is_said_once():
    m = {"domains": ["a", "b", "c"], "splits": {
        "train": {d: {"documents": 1000, "tokens": 10**6} for d in "abc"},
        "validation": {"a": {"documents": 64, "tokens": 16_448},
                       "b": {"documents": 64, "tokens": 16_448},
                       "c": {"documents": 30, "tokens": 9_000}}}}
    assert data_notes(m, {}, None) == [
        "every domain's validation set is small (the smallest: 30 documents, 9,000 tokens): "
        "per-domain and worst-case numbers rest on few documents; compare mixtures on the "
        "average, over several seeds"]
