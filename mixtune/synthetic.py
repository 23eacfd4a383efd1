"""Synthetic multi-domain corpora whose irreducible loss is known exactly.

Each domain is a small stochastic source over `vocab` symbols (ids `0 .. vocab-1`), written
straight to token ids (no text, no BPE), so the best loss any model can reach on it is a number we
can compute rather than estimate. That makes the demo and the tests honest: a trained model's loss
can be compared with `loss_floor`, and a mixture method's choices can be checked against which
domains still have something left to learn.

Kinds of source:

* `noise`  - i.i.d. uniform symbols. Entropy rate log(vocab): nothing to learn, ever.
* `repeat` - a fixed cycle through `period` symbols (a random order of the vocabulary), started at
  a uniformly random position. Entropy rate 0: trivially learnable.
* `markov` - a sparse first-order Markov chain: every state has `branching` allowed successors
  with fixed Dirichlet(`concentration`) probabilities. The successors always include the next
  state on a random Hamiltonian cycle, so the chain is irreducible and has a unique stationary
  distribution pi; the entropy rate sum_s pi(s) H(P(.|s)) is computed exactly from it.

`default_domains()` gives `noise`, `repeat` and three Markov chains of graded difficulty (2, 8 and
32 successors). `markov_hard` is the one meant to be up-weighted by a DRO mixture method: its
entropy rate (about 3 nats) is high but far below log(256) = 5.55, and it has the most transition
probabilities to learn (256 x 32), so a small model's excess loss over the floor stays largest
there for longest.

Documents are `doc_len` symbols started from the source's stationary distribution, followed by one
EOS token (id `vocab`), and are concatenated into one stream per split and domain. `write_dataset`
writes such streams as a prepared dataset directory (see `mixtune.data.store`).

Every source is determined by its `DomainSpec` (kind, params, seed) and `vocab`; samples by that
and the sampling seed. Give each domain of a dataset its own spec seed: two specs equal but for
the name describe the same source.
"""

from __future__ import annotations

import math
import numbers
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
from tokenizers import Tokenizer, models, pre_tokenizers

from mixtune.data import store
from mixtune.data.tokenizer import save_tokenizer
from mixtune.errors import UserError
from mixtune.eval.generated import write_generated_tasks
from mixtune.io import staged_dir, write_json_atomic
from mixtune.provenance import write_dataset_record
from mixtune.records import Manifest, TokenizerInfo
from mixtune.schema import at_least, setting


class SpecError(ValueError):
    """A description of generated data that cannot be generated: a bad name, kind, parameter or
    size. (Other errors from this module are bugs, not bad descriptions.)"""


EOS_TOKEN = "<eos>"
TOKENIZER_SOURCE = "synthetic word-level"

# Parameters each kind accepts, with their defaults (None: filled in from `vocab`).
_KIND_PARAMS: dict[str, dict[str, float | int | None]] = {
    "noise": {},
    "repeat": {"period": None},
    "markov": {"branching": 8, "concentration": 1.0},
}
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
# Floor on a Markov transition probability: Dirichlet draws with a small concentration can
# underflow to 0, which could cut the guaranteed cycle and make the chain reducible.
_MIN_PROB = 1e-9
# Documents are generated this many tokens at a time, to bound memory for big datasets.
_CHUNK_TOKENS = 1 << 20


@dataclass(frozen=True)
class DomainSpec:
    """One synthetic domain: `name` (its file name), `kind` (noise, repeat, markov), `params`
    (see below) and `seed` (fixes the source's structure: cycle order, transition table).

    Params: repeat takes `period` (default: vocab); markov takes `branching` (successors per
    state, default 8) and `concentration` (Dirichlet parameter, default 1.0); noise takes none.
    `params` may be given as a dict; it is stored as a sorted tuple of pairs so specs stay
    hashable (use `spec.param(key)` or `dict(spec.params)` to read it).
    """

    name: str
    kind: str
    params: tuple[tuple[str, float | int], ...] | Mapping[str, float | int] = field(default=())
    seed: int = 0

    def __post_init__(self) -> None:
        if not _NAME_RE.fullmatch(self.name):
            raise SpecError(
                f"domain name {self.name!r}: use letters, digits, '_', '-', '.' (it names a file)"
            )
        if self.kind not in _KIND_PARAMS:
            raise SpecError(
                f"domain {self.name}: unknown kind {self.kind!r}, use one of {sorted(_KIND_PARAMS)}"
            )
        params = dict(self.params)
        unknown = set(params) - set(_KIND_PARAMS[self.kind])
        if unknown:
            raise SpecError(
                f"domain {self.name}: {self.kind} takes params {sorted(_KIND_PARAMS[self.kind])}, not {sorted(unknown)}"
            )
        if self.seed < 0:
            raise SpecError(f"domain {self.name}: seed must be >= 0, got {self.seed}")
        object.__setattr__(self, "params", tuple(sorted(params.items())))

    def param(self, key: str, default: float | int | None = None) -> float | int | None:
        return dict(self.params).get(key, default)


def default_domains() -> list[DomainSpec]:
    """noise, repeat and three Markov chains; `markov_hard` is the one a DRO method should favour."""
    return [
        DomainSpec("noise", "noise", seed=0),
        DomainSpec("repeat", "repeat", seed=1),
        DomainSpec("markov_easy", "markov", {"branching": 2}, seed=2),
        DomainSpec("markov_medium", "markov", {"branching": 8}, seed=3),
        DomainSpec("markov_hard", "markov", {"branching": 32}, seed=4),
    ]


def resolved_params(spec: DomainSpec, vocab: int = 256) -> dict[str, float | int]:
    """The spec's params with defaults filled in, checked against `vocab`."""
    _check_vocab(vocab)
    params = {**_KIND_PARAMS[spec.kind], **dict(spec.params)}
    if spec.kind == "repeat":
        period = vocab if params["period"] is None else params["period"]
        if not (_is_int(period) and 1 <= period <= vocab):
            raise SpecError(
                f"domain {spec.name}: period must be an integer in [1, {vocab}], got {period!r}"
            )
        params["period"] = int(period)
    elif spec.kind == "markov":
        b, alpha = params["branching"], params["concentration"]
        if not (_is_int(b) and 1 <= b <= vocab):
            raise SpecError(
                f"domain {spec.name}: branching must be an integer in [1, {vocab}], got {b!r}"
            )
        if not alpha > 0:
            raise SpecError(f"domain {spec.name}: concentration must be > 0, got {alpha!r}")
    return params


# --- Exact information quantities -----------------------------------------------------------


def stationary(P: np.ndarray) -> np.ndarray:
    """The stationary distribution of an irreducible chain with row-stochastic matrix `P`.

    Solves pi (P - I) = 0 with sum(pi) = 1 directly (one equation of the singular system replaced
    by the normalisation), which is exact to machine precision and, unlike power iteration, also
    works for periodic chains.
    """
    n = P.shape[0]
    A = P.T - np.eye(n)
    A[-1, :] = 1.0
    rhs = np.zeros(n)
    rhs[-1] = 1.0
    try:
        pi = np.linalg.solve(A, rhs)
    except np.linalg.LinAlgError:
        pi = np.full(n, np.nan)  # singular: more than one closed class
    if not (np.all(pi > -1e-12) and np.allclose(pi @ P, pi, atol=1e-12)):
        raise ValueError(
            "transition matrix has no unique stationary distribution (reducible chain?)"
        )
    pi = np.clip(pi, 0.0, None)
    return pi / pi.sum()


def entropy(p: np.ndarray) -> float:
    """Shannon entropy in nats of a distribution (zeros contribute nothing)."""
    p = np.asarray(p, dtype=np.float64)
    nz = p[p > 0]
    return float(-(nz * np.log(nz)).sum())


def markov_entropy_rate(P: np.ndarray, pi: np.ndarray | None = None) -> float:
    """sum_s pi(s) H(P(.|s)) in nats per token for a first-order chain."""
    pi = stationary(P) if pi is None else pi
    P = np.asarray(P, dtype=np.float64)
    plogp = np.where(P > 0, P * np.log(np.where(P > 0, P, 1.0)), 0.0)
    return float(-(pi * plogp.sum(axis=1)).sum())


@dataclass(frozen=True)
class _Chain:
    """A sparse Markov chain: state s goes to succ[s, j] with probability probs[s, j]."""

    succ: np.ndarray  # (vocab, branching) int64, distinct successors per row
    probs: np.ndarray  # (vocab, branching) float64, rows sum to 1
    pi: np.ndarray  # (vocab,) stationary distribution

    def dense(self) -> np.ndarray:
        return _dense(self.succ, self.probs)


def _dense(succ: np.ndarray, probs: np.ndarray) -> np.ndarray:
    V = succ.shape[0]
    P = np.zeros((V, V))
    P[np.arange(V)[:, None], succ] = probs
    return P


@lru_cache(maxsize=64)
def _markov_chain(spec: DomainSpec, vocab: int) -> _Chain:
    params = resolved_params(spec, vocab)
    b, alpha = int(params["branching"]), float(params["concentration"])
    rng = np.random.default_rng([spec.seed, 0])
    # A random Hamiltonian cycle guarantees irreducibility (one closed class, pi > 0 everywhere);
    # the other b-1 successors of each state are distinct symbols drawn uniformly.
    order = rng.permutation(vocab)
    cycle_next = np.empty(vocab, dtype=np.int64)
    cycle_next[order] = np.roll(order, -1)
    succ = np.empty((vocab, b), dtype=np.int64)
    for s in range(vocab):
        others = np.delete(np.arange(vocab), cycle_next[s])
        succ[s, 0] = cycle_next[s]
        succ[s, 1:] = rng.choice(others, size=b - 1, replace=False)
    probs = rng.dirichlet(np.full(b, alpha), size=vocab)
    probs = np.maximum(probs, _MIN_PROB)
    probs /= probs.sum(axis=1, keepdims=True)
    chain = _Chain(succ, probs, stationary(_dense(succ, probs)))
    for a in (chain.succ, chain.probs, chain.pi):
        a.flags.writeable = False  # cached and shared: nobody may mutate it
    return chain


def transition_matrix(spec: DomainSpec, vocab: int = 256) -> np.ndarray:
    """The dense (vocab, vocab) transition matrix of a `markov` domain.

    The exact stationary solve uses this dense matrix, so Markov domains are meant for small
    vocabularies (up to a few thousand symbols).
    """
    if spec.kind != "markov":
        raise ValueError(
            f"domain {spec.name}: transition_matrix is defined for markov domains, not {spec.kind}"
        )
    return _markov_chain(spec, vocab).dense()


def start_distribution(spec: DomainSpec, vocab: int = 256) -> np.ndarray:
    """Distribution of a document's first symbol: the source's stationary distribution."""
    if spec.kind == "markov":
        return np.array(_markov_chain(spec, vocab).pi)
    p = np.zeros(vocab)
    if spec.kind == "noise":
        p[:] = 1.0 / vocab
    else:  # repeat: a uniform position on the cycle
        cycle = _repeat_cycle(spec, vocab)
        p[cycle] = 1.0 / len(cycle)
    return p


def entropy_rate(spec: DomainSpec, vocab: int = 256) -> float:
    """Entropy rate of the source in nats per token (the loss floor deep inside a document)."""
    resolved_params(spec, vocab)
    if spec.kind == "noise":
        return math.log(vocab)
    if spec.kind == "repeat":
        return 0.0
    chain = _markov_chain(spec, vocab)
    return markov_entropy_rate(chain.dense(), chain.pi)


def loss_floor(spec: DomainSpec, doc_len: int, vocab: int = 256) -> float:
    """Exact expected cross-entropy (nats per token) of the Bayes-optimal predictor of the packed
    stream, averaged over every token of it, EOS included.

    Assumes the predictor knows the position within the document and sees the document so far
    (for these first-order sources the previous symbol suffices). Per document of doc_len + 1
    tokens: the first symbol is independent of everything before it (documents are independent)
    and drawn from the stationary distribution, costing H(pi); each later symbol costs the
    entropy rate h, because the chain is stationary at every position; EOS is certain given the
    position and costs 0. So the floor is (H(pi) + (doc_len - 1) h) / (doc_len + 1):
    noise -> doc_len log V / (doc_len + 1); repeat -> log(period) / (doc_len + 1).

    A model whose context window does not always reach back to the last EOS cannot know exactly
    where a document ends, so the loss a real packed-sequence model can reach is slightly higher;
    this is a lower bound in that case.
    """
    if doc_len < 1:
        raise SpecError(f"doc_len must be >= 1, got {doc_len}")
    first = entropy(start_distribution(spec, vocab))
    return (first + (doc_len - 1) * entropy_rate(spec, vocab)) / (doc_len + 1)


# --- Sampling -------------------------------------------------------------------------------


def _repeat_cycle(spec: DomainSpec, vocab: int) -> np.ndarray:
    period = int(resolved_params(spec, vocab)["period"])
    return np.random.default_rng([spec.seed, 0]).permutation(vocab)[:period]


def _sample_documents(spec: DomainSpec, n_docs: int, doc_len: int, vocab: int, rng) -> np.ndarray:
    """(n_docs, doc_len) int64 symbols, each row started from the stationary distribution."""
    if spec.kind == "noise":
        return rng.integers(0, vocab, size=(n_docs, doc_len))
    if spec.kind == "repeat":
        cycle = _repeat_cycle(spec, vocab)
        start = rng.integers(0, len(cycle), size=n_docs)
        return cycle[(start[:, None] + np.arange(doc_len)) % len(cycle)]
    return _sample_markov(_markov_chain(spec, vocab), n_docs, doc_len, rng)


def _sample_markov(chain: _Chain, n_docs: int, doc_len: int, rng) -> np.ndarray:
    """Step all documents in parallel, one position at a time, by inverse-CDF sampling.

    State s's cumulative probabilities are shifted to (s, s+1], which lays every state's table
    end to end in one sorted array: a single searchsorted of s + u then picks the successor of
    every document at once. Cost is one vectorised step per position, so many short documents
    are fast (about 0.15 s per million tokens at doc_len 256) and one very long document is slow
    (a few microseconds per token).
    """
    V, b = chain.succ.shape
    cum = np.cumsum(chain.probs, axis=1)
    cum[:, -1] = 1.0  # exact, so state s's table ends exactly at s + 1
    flat_cum = (np.arange(V)[:, None] + cum).ravel()
    flat_succ = chain.succ.ravel()

    out = np.empty((n_docs, doc_len), dtype=np.int64)
    out[:, 0] = np.searchsorted(np.cumsum(chain.pi), rng.random(n_docs), side="right").clip(
        max=V - 1
    )
    u = rng.random((n_docs, doc_len - 1))
    for t in range(1, doc_len):
        s = out[:, t - 1]
        idx = np.searchsorted(flat_cum, s + u[:, t - 1], side="right")
        # s + u can round up to s + 1 when u is within 2**-53 of 1; stay in state s's table.
        out[:, t] = flat_succ[np.minimum(idx, s * b + b - 1)]
    return out


def _stream_chunks(
    spec: DomainSpec, n_docs: int, doc_len: int, seed: int, vocab: int
) -> Iterator[tuple[np.ndarray, int]]:
    """Yield (packed tokens, documents) chunks of the stream; the chunking is part of the
    definition of the stream, so `generate_tokens` and `write_dataset` produce the same bytes."""
    rng = np.random.default_rng([spec.seed, 1, seed])
    dtype = store.token_dtype(vocab + 1)
    per_chunk = max(1, _CHUNK_TOKENS // (doc_len + 1))
    for first in range(0, n_docs, per_chunk):
        n = min(per_chunk, n_docs - first)
        docs = np.empty((n, doc_len + 1), dtype=dtype)
        docs[:, :doc_len] = _sample_documents(spec, n, doc_len, vocab, rng)
        docs[:, doc_len] = vocab  # EOS
        yield docs.ravel(), n


def _num_documents(n_tokens: int, doc_len: int) -> int:
    return -(-n_tokens // (doc_len + 1))  # ceil: at least n_tokens tokens


def generate_tokens(
    spec: DomainSpec, n_tokens: int, doc_len: int, seed: int, vocab: int = 256
) -> np.ndarray:
    """The packed stream of a domain: documents of `doc_len` symbols each followed by EOS (id
    `vocab`), at least `n_tokens` tokens (rounded up to whole documents; 0 gives an empty array).

    Deterministic in (spec, seed, vocab). dtype: `store.token_dtype(vocab + 1)`.
    """
    _check_sizes(n_tokens, doc_len, vocab, seed)
    resolved_params(spec, vocab)
    chunks = [
        c for c, _ in _stream_chunks(spec, _num_documents(n_tokens, doc_len), doc_len, seed, vocab)
    ]
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=store.token_dtype(vocab + 1))


# --- The dataset directory ------------------------------------------------------------------


def build_tokenizer(vocab: int = 256) -> Tokenizer:
    """Word-level tokenizer: "t0" .. "t{vocab-1}" are ids 0 .. vocab-1, "<eos>" is id vocab.

    Unknown words map to EOS rather than to an extra id nobody generates (WordLevel needs an
    unk token in the vocabulary to encode unknown words at all). No decoder is set: decoding
    joins the words with spaces, which is exactly this format.
    """
    words = {f"t{i}": i for i in range(vocab)}
    words[EOS_TOKEN] = vocab
    tok = Tokenizer(models.WordLevel(vocab=words, unk_token=EOS_TOKEN))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return tok


def write_dataset(
    out: str | os.PathLike,
    *,
    domains: Sequence[DomainSpec] | None = None,
    train_tokens: int | Mapping[str, int] = 200_000,
    validation_tokens: int | Mapping[str, int] = 20_000,
    doc_len: int = 256,
    seq_len: int = 128,
    vocab: int = 256,
    seed: int = 0,
    disjoint: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write a prepared dataset of synthetic domains to `out` (atomically) and return its path.

    Token counts are per domain and split (one number for all, or `{domain: tokens}` to give the
    domains unequal sizes, so that `natural` differs from `uniform`), rounded up to whole
    documents. With `disjoint`, domain number i (in sorted-name order) uses the ids
    `i*vocab .. (i+1)*vocab - 1`, as real domains (code, German prose) differ in vocabulary: a
    model then tells the domains apart from any token, the floors are unchanged, and EOS is
    `k*vocab`. Train and validation
    are independent samples of the same sources. If `out` already holds a dataset and not
    `overwrite`, it is left alone.
    """
    out = Path(out)
    domains = default_domains() if domains is None else list(domains)
    summaries = check_config(domains, train_tokens, validation_tokens, doc_len, vocab, seed)
    if seq_len < 1:
        raise SpecError(f"seq_len must be >= 1, got {seq_len}")

    if (out / store.MANIFEST).is_file() and not overwrite:
        return out
    if out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        # Not a dataset of ours (a publish is atomic): refuse rather than replace someone's files.
        raise UserError(
            f"{out} exists and is not a prepared dataset; pass overwrite or another path."
        )

    with staged_dir(out) as staged:
        manifest = _write_into(
            staged,
            domains,
            summaries,
            train_tokens,
            validation_tokens,
            doc_len,
            seq_len,
            vocab,
            seed,
            disjoint,
        )
        write_json_atomic(staged / store.MANIFEST, manifest.to_json())
        validation = {d: np.fromfile(staged / "validation" / f"{d}.bin", dtype=manifest.dtype)
                      for d in manifest.domains}
        write_generated_tasks(staged, validation, eos_id=manifest.tokenizer.eos_id)
        write_dataset_record(staged, out, manifest, [f"synthetic (seed {seed})"])
    return out


def check_config(
    domains: Sequence[DomainSpec],
    train_tokens: int | Mapping[str, int],
    validation_tokens: int | Mapping[str, int],
    doc_len: int,
    vocab: int,
    seed: int = 0,
) -> dict[str, dict]:
    """Check a dataset's description (ValueError naming the problem); return each domain's
    summary (kind, params, entropy rate, loss floor)."""
    names = [d.name for d in domains]
    if not domains:
        raise SpecError("no domains given")
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise SpecError(f"duplicate domain names {dupes}")
    for tokens in (train_tokens, validation_tokens):
        if isinstance(tokens, Mapping) and set(tokens) != set(names):
            raise SpecError(f"token counts name {sorted(tokens)}, the domains are {sorted(names)}")
        for n in tokens.values() if isinstance(tokens, Mapping) else [tokens]:
            _check_sizes(n, doc_len, vocab, seed)
    return {d.name: _domain_summary(d, doc_len, vocab) for d in domains}  # validates params


def _write_into(
    staged: Path,
    domains: list[DomainSpec],
    summaries: dict[str, dict],
    train_tokens: int | Mapping[str, int],
    validation_tokens: int | Mapping[str, int],
    doc_len: int,
    seq_len: int,
    vocab: int,
    seed: int,
    disjoint: bool = False,
) -> Manifest:
    """Write tokenizer and token files into `staged`; return the manifest."""
    tokdir = staged / "tokenizer"
    symbols = vocab * len(domains) if disjoint else vocab
    save_tokenizer(build_tokenizer(symbols), tokdir, eos_token=EOS_TOKEN)
    vocab_size = symbols + 1
    dtype = store.token_dtype(vocab_size)
    splits: dict[str, dict] = {}
    # 2*seed + split index: train and validation never share a sampling seed, for any seed.
    for index, (split, n_tokens) in enumerate(
        (("train", train_tokens), ("validation", validation_tokens))
    ):
        entries = {}
        for i, spec in enumerate(sorted(domains, key=lambda d: d.name)):
            writer = store.TokenWriter(staged / split / f"{spec.name}.bin", dtype)
            try:
                count = n_tokens[spec.name] if isinstance(n_tokens, Mapping) else n_tokens
                n_docs = _num_documents(count, doc_len)
                for chunk, docs in _stream_chunks(spec, n_docs, doc_len, 2 * seed + index, vocab):
                    if disjoint:  # shift the symbols into the domain's own id range; EOS last
                        chunk = chunk.astype(np.int64)
                        chunk = np.where(chunk == vocab, symbols, chunk + i * vocab)
                    writer.write(chunk, documents=docs)
            finally:
                writer.close()
            entries[spec.name] = store.domain_counts(writer.documents, writer.tokens, seq_len)
        splits[split] = entries
    return Manifest(
        domains=sorted(summaries),
        seq_len=seq_len,
        dtype=dtype.str,
        tokenizer=TokenizerInfo(
            sha256=store.tokenizer_hash(tokdir),
            vocab_size=vocab_size,
            eos_id=symbols,
            source=TOKENIZER_SOURCE,
        ),
        splits=splits,
        sources=["synthetic"],
        synthetic={
            "vocab": vocab,
            "doc_len": doc_len,
            "seed": seed,
            "disjoint": disjoint,
            "domains": dict(sorted(summaries.items())),
        },
    )


def _domain_summary(spec: DomainSpec, doc_len: int, vocab: int) -> dict:
    return {
        "kind": spec.kind,
        "params": resolved_params(spec, vocab),
        "seed": spec.seed,
        "entropy_rate": entropy_rate(spec, vocab),
        "loss_floor": loss_floor(spec, doc_len, vocab),
    }


def _is_int(x: object) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _check_vocab(vocab: int) -> None:
    if not (_is_int(vocab) and 1 <= vocab < 2**32 - 1):
        raise SpecError(f"vocab must be an integer in [1, 2**32 - 2], got {vocab!r}")


def _check_sizes(n_tokens: int, doc_len: int, vocab: int, seed: int) -> None:
    _check_vocab(vocab)
    if n_tokens < 0:
        raise SpecError(f"token count must be >= 0, got {n_tokens}")
    if doc_len < 1:
        raise SpecError(f"doc_len must be >= 1, got {doc_len}")
    if seed < 0:
        raise SpecError(f"seed must be >= 0, got {seed}")


# -- the settings (data.synthetic in a run YAML) -----------------------------------------------


@dataclass
class SyntheticDomain:
    name: str
    """File name of the domain: letters, digits, '_', '-', '.'."""
    kind: Literal["noise", "repeat", "markov"]
    """noise (nothing to learn), repeat (a fixed cycle) or markov (a sparse Markov chain)."""
    params: dict[str, int | float] = setting(factory=dict)
    """repeat: period; markov: branching, concentration."""
    seed: int = setting(0, check=at_least(0))
    """Fixes the source's structure (cycle order, transition table)."""


@dataclass
class SyntheticConfig:
    domains: list[SyntheticDomain] | None = None
    """The domains (none: noise, repeat and three Markov chains of graded difficulty)."""
    train_tokens: int | dict[str, int] = 200_000
    """Training tokens per domain: one number, or {domain: tokens}."""
    validation_tokens: int | dict[str, int] = 20_000
    """Validation tokens per domain: one number, or {domain: tokens}."""
    doc_len: int = setting(256, check=at_least(1))
    """Symbols per document (each followed by EOS)."""
    seq_len: int = setting(128, check=at_least(1))
    """Tokens per training sequence."""
    vocab: int = setting(256, check=at_least(1))
    """Symbols per domain."""
    seed: int = setting(0, check=at_least(0))
    """Sampling seed."""
    disjoint: bool = False
    """Give every domain its own symbol ids, as real domains differ in vocabulary."""

    def validate(self, label) -> None:
        try:  # the generator's own checks of a description, named here
            check_config(self.specs(), self.train_tokens, self.validation_tokens, self.doc_len, self.vocab)
        except SpecError as e:
            raise UserError(f"{label.section()}: {e}.") from None

    def specs(self) -> list[DomainSpec]:
        if self.domains is None:
            return default_domains()
        return [DomainSpec(d.name, d.kind, d.params, d.seed) for d in self.domains]
