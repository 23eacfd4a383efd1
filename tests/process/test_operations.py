"""Each processing operation on a corpus with planted junk: it removes what was planted (recall)
and keeps the clean documents (precision), both >= 0.9. The figures are printed (pytest -s) and
recorded in the README's Processing section."""

import pytest

pytest.importorskip("datatrove")

from mixtune.process.config import ProcessOptions  # noqa: E402
from mixtune.process.run import process  # noqa: E402
from tests.process.planted import make_corpus, read_output  # noqa: E402

FLOOR = 0.9


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    return root, make_corpus(root, clean=60)


def run_pipeline(root, tmp_path, steps, tasks=2):
    import yaml

    pipe = tmp_path / "pipeline.yaml"
    pipe.write_text(yaml.safe_dump(steps))
    out = process(ProcessOptions([str(root)], str(tmp_path / "out"), pipeline=str(pipe),
                                 tasks=tasks, workers=1))
    return read_output(out)


def scores(dropped: set, target: set, allowed: set = frozenset()) -> tuple[float, float]:
    """Precision (what was dropped was junk: the target or junk this step may also take) and
    recall (the target was dropped)."""
    precision = len(dropped & (target | allowed)) / len(dropped) if dropped else 1.0
    recall = len(dropped & target) / len(target)
    return precision, recall


def report(name, precision, recall):
    print(f"\n{name}: precision {precision:.3f}, recall {recall:.3f}")
    assert precision >= FLOOR and recall >= FLOOR, (name, precision, recall)


@pytest.mark.parametrize("op, kinds", [
    ({"op": "exact_dedup"}, ["exact"]),
    ({"op": "minhash_dedup"}, ["exact", "near"]),
])
def test_dedup_drops_all_copies_but_one(corpus, tmp_path, op, kinds):
    """Of a clean document and its copies exactly one survives (which one depends on the order
    the tasks read them): recall is the share of redundant copies dropped, precision the share
    of dropped documents that had a copy left."""
    root, c = corpus
    kept = {text for _d, _s, text in run_pipeline(root, tmp_path, [op])}
    inputs = {text for _d, _s, text in c.docs}
    copies = c.texts(*kinds)
    groups: dict[str, set] = {}
    for copy in copies:
        groups.setdefault(c.original[copy], {c.original[copy]}).add(copy)
    dropped = inputs - kept
    redundant = sum(len(g) - 1 for g in groups.values())
    recall = sum(len(g - kept) for g in groups.values()) / redundant
    members = set().union(*groups.values())
    precision = len({t for t in dropped if t in members and groups[c.original.get(t, t)] & kept}) \
        / max(1, len(dropped))
    report(op["op"], precision, recall)
    assert all(g & kept for g in groups.values())  # never every copy
    assert c.texts("clean") - members <= kept  # documents without copies stay


@pytest.mark.parametrize("op, target, allowed", [
    ({"op": "language", "languages": ["en"]}, ["foreign"], ["symbols", "short"]),
    ({"op": "gopher_quality"}, ["short", "symbols"], ["foreign"]),
    ({"op": "length", "min_words": 20}, ["short"], []),
])
def test_document_operations_drop_what_was_planted(corpus, tmp_path, op, target, allowed):
    root, c = corpus
    kept = {text for _d, _s, text in run_pipeline(root, tmp_path, [op])}
    inputs = {text for _d, _s, text in c.docs}
    p, r = scores(inputs - kept, c.texts(*target), c.texts(*allowed))
    report(op["op"], p, r)
    assert c.texts("clean") <= kept


def test_bff_drops_duplicate_documents_and_repeated_paragraphs(tmp_path):
    """BFF keeps the first occurrence: with every copy after its original (one domain, one file,
    one task), the copies go, repeated paragraphs are cut, the clean documents stay whole."""
    root = tmp_path / "raw"
    c = make_corpus(root, clean=60, splits=False, files_per_domain=1, domains=("web",),
                    shuffle=False)
    out = run_pipeline(root, tmp_path, [{"op": "bff_dedup", "expected_ngrams": 1_000_000}],
                       tasks=1)
    kept = {text.rstrip("\n") for _d, _s, text in out}
    inputs = {text for _d, _s, text in c.docs}
    dropped = inputs - kept - c.texts("repeated_paragraph")
    p, r = scores(dropped, c.texts("exact", "near"))
    report("bff_dedup documents", p, r)
    cut = sum(t in kept for t in c.repeated_paragraphs) / len(c.repeated_paragraphs)
    clean = len(c.texts("clean") & kept) / len(c.texts("clean"))
    report("bff_dedup paragraphs", clean, cut)


def test_refinedweb_lines_remove_boilerplate_lines(corpus, tmp_path):
    from tests.process.planted import BOILERPLATE

    root, c = corpus
    out = run_pipeline(root, tmp_path, [{"op": "refinedweb_lines", "max_removed_ratio": 1.0}])
    kept_lines = [line for _d, _s, t in out for line in t.split("\n")]
    planted = sum(t.split("\n").count(b) for t in c.texts("boilerplate") for b in BOILERPLATE)
    left = sum(kept_lines.count(b) for b in BOILERPLATE)
    in_lines = [line for t in c.texts("clean", "boilerplate") for line in t.split("\n")]
    removed_clean = sum(1 for line in in_lines if line not in BOILERPLATE) - sum(
        1 for line in kept_lines if line in set(in_lines) and line not in BOILERPLATE)
    recall = 1 - left / planted
    precision = planted / (planted + max(0, removed_clean))
    report("refinedweb_lines", precision, recall)
    # The documents whose boilerplate was stripped are the clean bodies again.
    assert set(c.boilerplate_docs) <= {t for _d, _s, t in out}
