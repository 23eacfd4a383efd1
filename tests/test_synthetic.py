"""Synthetic corpora: exact entropy rates and loss floors, sampling, and the dataset directory."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mixtune.data import store
from mixtune.errors import UserError
from mixtune.synthetic import (
    DomainSpec,
    default_domains,
    entropy,
    entropy_rate,
    generate_tokens,
    loss_floor,
    markov_entropy_rate,
    start_distribution,
    stationary,
    transition_matrix,
    write_dataset,
)

V = 256
DOMAINS = {d.name: d for d in default_domains()}


def binary_entropy(p: float) -> float:
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


def plugin_conditional_entropy(stream: np.ndarray, doc_len: int) -> float:
    """Plug-in estimate of H(X_t | X_{t-1}) from transitions inside documents only."""
    docs = stream.reshape(-1, doc_len + 1)[:, :doc_len].astype(np.int64)
    prev, nxt = docs[:, :-1].ravel(), docs[:, 1:].ravel()
    counts = np.bincount(prev * V + nxt, minlength=V * V).reshape(V, V).astype(np.float64)
    rows = counts.sum(axis=1, keepdims=True)
    p = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return float(-(rows[:, 0] / rows.sum() * plogp.sum(axis=1)).sum())


# --- Exact quantities -----------------------------------------------------------------------


def test_default_domains_names_and_ordering_of_difficulty():
    assert list(DOMAINS) == ["noise", "repeat", "markov_easy", "markov_medium", "markov_hard"]
    rates = [
        entropy_rate(DOMAINS[n])
        for n in ("repeat", "markov_easy", "markov_medium", "markov_hard", "noise")
    ]
    assert rates == sorted(rates)
    # markov_hard is high-entropy but clearly learnable: well below log V.
    assert 2.5 < entropy_rate(DOMAINS["markov_hard"]) < math.log(V) - 2


def test_entropy_rate_noise_and_repeat():
    assert entropy_rate(DOMAINS["noise"]) == pytest.approx(math.log(V), abs=1e-12)
    assert entropy_rate(DomainSpec("n", "noise"), vocab=10) == pytest.approx(math.log(10))
    assert entropy_rate(DOMAINS["repeat"]) == 0.0


def test_two_state_chain_closed_form():
    a, b = 0.3, 0.1
    P = np.array([[1 - a, a], [b, 1 - b]])
    pi = np.array([b, a]) / (a + b)
    np.testing.assert_allclose(stationary(P), pi, atol=1e-15)
    expected = pi[0] * binary_entropy(a) + pi[1] * binary_entropy(b)
    assert markov_entropy_rate(P) == pytest.approx(expected, abs=1e-14)

    # The same through a spec: a 2-symbol chain with 2 successors per state.
    spec = DomainSpec("two", "markov", {"branching": 2}, seed=7)
    P = transition_matrix(spec, vocab=2)
    a, b = P[0, 1], P[1, 0]
    pi = np.array([b, a]) / (a + b)
    expected = pi[0] * binary_entropy(a) + pi[1] * binary_entropy(b)
    assert entropy_rate(spec, vocab=2) == pytest.approx(expected, abs=1e-14)


def test_markov_structure():
    spec = DOMAINS["markov_medium"]
    P = transition_matrix(spec)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-12)
    assert ((P > 0).sum(axis=1) == 8).all()
    pi = start_distribution(spec)
    np.testing.assert_allclose(pi @ P, pi, atol=1e-15)
    assert (pi > 0).all() and pi.sum() == pytest.approx(1.0)


def test_loss_floor_formula():
    L = 256
    noise = DOMAINS["noise"]
    assert loss_floor(noise, L) == pytest.approx(L * math.log(V) / (L + 1), abs=1e-12)
    assert loss_floor(DOMAINS["repeat"], L) == pytest.approx(math.log(V) / (L + 1), abs=1e-12)
    assert loss_floor(DomainSpec("r", "repeat", {"period": 16}), L) == pytest.approx(
        math.log(16) / (L + 1)
    )
    for name in ("markov_easy", "markov_medium", "markov_hard"):
        spec = DOMAINS[name]
        h, h0 = entropy_rate(spec), entropy(start_distribution(spec))
        assert loss_floor(spec, L) == pytest.approx((h0 + (L - 1) * h) / (L + 1), abs=1e-12)
        assert loss_floor(spec, 1) == pytest.approx(h0 / 2)
        # Long documents: the floor tends to the entropy rate.
        assert loss_floor(spec, 10**7) == pytest.approx(h, abs=1e-5)


def test_spec_validation():
    with pytest.raises(ValueError, match="unknown kind"):
        DomainSpec("x", "zipf")
    with pytest.raises(ValueError, match="takes params"):
        DomainSpec("x", "markov", {"branchng": 2})
    with pytest.raises(ValueError, match="name"):
        DomainSpec("../x", "noise")
    with pytest.raises(ValueError, match="branching"):
        entropy_rate(DomainSpec("x", "markov", {"branching": 300}))
    spec = DomainSpec("x", "markov", {"branching": 2, "concentration": 0.5})
    assert spec == DomainSpec("x", "markov", {"concentration": 0.5, "branching": 2})
    assert hash(spec) == hash(DomainSpec("x", "markov", {"concentration": 0.5, "branching": 2}))
    assert spec.param("branching") == 2


# --- Sampling -------------------------------------------------------------------------------


@pytest.mark.parametrize("name,tol", [("markov_easy", 0.01), ("markov_hard", 0.02)])
def test_empirical_conditional_entropy_matches(name, tol):
    spec, L = DOMAINS[name], 64
    stream = generate_tokens(spec, 1_000_000, L, seed=1)
    # The plug-in estimate is biased low by about (#transitions - #states) / (2 N); both small.
    assert plugin_conditional_entropy(stream, L) == pytest.approx(entropy_rate(spec), abs=tol)


def test_first_token_and_marginals_follow_stationary():
    spec, L = DOMAINS["markov_medium"], 16
    stream = generate_tokens(spec, 600_000, L, seed=2)
    docs = stream.reshape(-1, L + 1)
    pi = start_distribution(spec)
    first = np.bincount(docs[:, 0], minlength=V + 1)[:V] / len(docs)
    assert 0.5 * np.abs(first - pi).sum() < 0.06  # total variation, ~35k documents
    # Stationarity: the last symbol of each document has the same distribution.
    last = np.bincount(docs[:, L - 1], minlength=V + 1)[:V] / len(docs)
    assert 0.5 * np.abs(last - pi).sum() < 0.06


def test_stream_layout_and_sources():
    L = 32
    for spec in default_domains():
        stream = generate_tokens(spec, 10_000, L, seed=0)
        assert stream.dtype == store.token_dtype(V + 1)
        assert len(stream) % (L + 1) == 0 and len(stream) >= 10_000
        eos = np.flatnonzero(stream == V)
        np.testing.assert_array_equal(eos, np.arange(L, len(stream), L + 1))
    noise = generate_tokens(DOMAINS["noise"], 200_000, L, seed=0)
    counts = np.bincount(noise[noise < V], minlength=V)
    assert counts.min() > 0.8 * counts.mean()
    # repeat: every document walks the same fixed cycle.
    docs = (
        generate_tokens(DOMAINS["repeat"], 20_000, L, seed=0).reshape(-1, L + 1)[:, :L].astype(int)
    )
    nxt = np.full(V, -1)
    nxt[docs[:, :-1].ravel()] = docs[:, 1:].ravel()
    np.testing.assert_array_equal(nxt[docs[:, :-1]], docs[:, 1:])
    assert len(set(nxt.tolist())) == V  # one cycle through all symbols


def test_generate_edge_sizes():
    spec = DOMAINS["markov_easy"]
    assert len(generate_tokens(spec, 0, 8, seed=0)) == 0
    assert len(generate_tokens(spec, 1, 8, seed=0)) == 9
    one = generate_tokens(spec, 5, 1, seed=0)
    assert len(one) == 6 and (one[1::2] == V).all()


def test_determinism():
    for spec in default_domains():
        a = generate_tokens(spec, 5_000, 50, seed=3)
        np.testing.assert_array_equal(a, generate_tokens(spec, 5_000, 50, seed=3))
        assert not np.array_equal(a, generate_tokens(spec, 5_000, 50, seed=4))


# --- The dataset directory ------------------------------------------------------------------


def test_write_dataset(tmp_path):
    from transformers import AutoTokenizer

    out = tmp_path / "data"
    L, seq_len = 64, 32
    assert (
        write_dataset(out, train_tokens=5_000, validation_tokens=1_000, doc_len=L, seq_len=seq_len)
        == out
    )
    manifest = json.loads((out / "manifest.json").read_text())
    names = sorted(DOMAINS)
    assert manifest["format_version"] == 1
    assert manifest["domains"] == names
    assert manifest["seq_len"] == seq_len
    assert manifest["dtype"] == "<u2" == store.token_dtype(V + 1).str
    assert manifest["sources"] == ["synthetic"]
    tok = manifest["tokenizer"]
    assert tok == {
        "sha256": store.tokenizer_hash(out / "tokenizer"),
        "vocab_size": V + 1,
        "eos_id": V,
        "source": "synthetic word-level",
    }
    syn = manifest["synthetic"]
    assert (syn["vocab"], syn["doc_len"], syn["seed"]) == (V, L, 0)
    assert sorted(syn["domains"]) == names
    for name, info in syn["domains"].items():
        assert info["kind"] == DOMAINS[name].kind
        assert info["entropy_rate"] == pytest.approx(entropy_rate(DOMAINS[name]))
        assert info["loss_floor"] == pytest.approx(loss_floor(DOMAINS[name], L))
    assert syn["domains"]["markov_hard"]["params"] == {"branching": 32, "concentration": 1.0}

    ds = store.open_dataset(out)
    for split, n_tokens in (("train", 5_000), ("validation", 1_000)):
        assert sorted(manifest["splits"][split]) == names
        for name in names:
            entry = manifest["splits"][split][name]
            path = out / split / f"{name}.bin"
            assert entry["tokens"] == path.stat().st_size // 2 >= n_tokens
            assert entry["documents"] * (L + 1) == entry["tokens"]
            assert entry == store.domain_counts(entry["documents"], entry["tokens"], seq_len).to_json()
            tokens = ds.tokens(split, name)
            np.testing.assert_array_equal(
                np.flatnonzero(tokens == V), np.arange(L, len(tokens), L + 1)
            )
    # Same source, independent samples.
    assert not np.array_equal(
        ds.tokens("train", "noise")[:1000], ds.tokens("validation", "noise")[:1000]
    )
    # The files hold exactly the generator's stream for the train split's seed.
    np.testing.assert_array_equal(
        ds.tokens("train", "markov_easy"), generate_tokens(DOMAINS["markov_easy"], 5_000, L, seed=0)
    )

    hf = AutoTokenizer.from_pretrained(out / "tokenizer")
    assert hf.encode("t3 t7 <eos>") == [3, 7, V]
    assert hf.eos_token_id == V and len(hf) == V + 1
    assert hf.encode("t1 hello") == [1, V]  # unknown words map to EOS
    sample = [int(t) for t in ds.tokens("train", "markov_hard")[: L + 1]]
    assert hf.encode(hf.decode(sample)) == sample

    # Rerun without overwrite: untouched. With overwrite: rewritten.
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    assert write_dataset(out, train_tokens=9_000, doc_len=L, seq_len=seq_len, seed=5) == out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == mtimes
    write_dataset(
        out,
        train_tokens=9_000,
        validation_tokens=0,
        doc_len=L,
        seq_len=seq_len,
        seed=5,
        overwrite=True,
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["synthetic"]["seed"] == 5
    assert manifest["splits"]["validation"]["noise"]["tokens"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no staging folders left


def test_write_dataset_custom_domains_and_errors(tmp_path):
    domains = [
        DomainSpec("a", "markov", {"branching": 3}, seed=1),
        DomainSpec("b", "repeat", {"period": 5}),
    ]
    out = write_dataset(
        tmp_path / "small",
        domains=domains,
        train_tokens=300,
        validation_tokens=100,
        doc_len=10,
        vocab=16,
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["domains"] == ["a", "b"] and manifest["tokenizer"]["vocab_size"] == 17
    assert manifest["synthetic"]["domains"]["b"]["params"] == {"period": 5}

    with pytest.raises(ValueError, match="duplicate"):
        write_dataset(
            tmp_path / "dup", domains=[DomainSpec("a", "noise"), DomainSpec("a", "repeat")]
        )
    with pytest.raises(ValueError, match="branching"):
        write_dataset(tmp_path / "bad", vocab=16)  # markov_hard needs 32 successors
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small"]


def test_write_dataset_failure_leaves_nothing(tmp_path, monkeypatch):
    from mixtune import synthetic

    calls = []

    def failing(*args):
        if calls:
            raise RuntimeError("disk full")
        calls.append(1)
        return original(*args)

    original = synthetic._sample_documents
    monkeypatch.setattr(synthetic, "_sample_documents", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        write_dataset(tmp_path / "data", train_tokens=1_000, validation_tokens=100, doc_len=10)
    assert list(tmp_path.iterdir()) == []


def test_write_dataset_refuses_foreign_folder(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not a prepared dataset"):
        write_dataset(tmp_path / "data", train_tokens=100, validation_tokens=100, doc_len=10)
    assert (tmp_path / "data" / "notes.txt").read_text() == "mine"


def test_write_dataset_per_domain_token_counts(tmp_path):
    from mixtune.data.store import open_dataset

    sizes = {
        "noise": 4000,
        "repeat": 1000,
        "markov_easy": 1000,
        "markov_medium": 1000,
        "markov_hard": 2000,
    }
    out = write_dataset(
        tmp_path / "d", train_tokens=sizes, validation_tokens=300, doc_len=99, seq_len=16
    )
    counts = open_dataset(out).counts("train")
    assert (
        counts["noise"] == 4000 and counts["markov_hard"] == 2000
    )  # 99 + EOS divides these exactly
    with pytest.raises(ValueError, match="token counts name"):
        write_dataset(tmp_path / "e", train_tokens={"noise": 10}, validation_tokens=10)


def test_write_dataset_disjoint_vocabularies(tmp_path):
    from mixtune.data.store import open_dataset

    ds = open_dataset(
        write_dataset(
            tmp_path / "d",
            train_tokens=2570,
            validation_tokens=257,
            vocab=32,
            doc_len=256,
            seq_len=16,
            disjoint=True,
        )
    )
    k = len(ds.domains)
    assert ds.vocab_size == 32 * k + 1 and ds.eos_id == 32 * k
    for i, d in enumerate(ds.domains):
        t = np.asarray(ds.tokens("train", d))
        body = t[t != ds.eos_id]
        assert body.min() >= 32 * i and body.max() < 32 * (i + 1), d
        assert np.count_nonzero(t == ds.eos_id) == 10
