"""Notes on the data a report's numbers rest on, from the dataset's manifest (`mixtune prepare`):
validation sets too small to rank on, exact duplicates in validation or shared with training, and
mixtures that give a domain of few training documents or tokens a weight a main run must repeat.

`data_notes` returns plain text, one note per problem, sorted by domain, and nothing when all is
well; the caller escapes and wraps them. A manifest written before prepare counted duplicates
(no `duplicates` / `in_train` fields) gets no duplicate notes: unknown, not zero.
"""

from __future__ import annotations

import math

from mixtune.data.weights import DEFAULT_MAX_EPOCHS
from mixtune.records import Manifest

# A domain's validation log-ppl is a mean over its documents, and losses differ from document to
# document by more than mixtures differ: under about 20 documents the domain's number (and a worst
# case it decides) says which few texts landed in validation more than how good the model is on
# the domain. Tokens within a document are correlated, so many short documents do not make up for
# a small total either: below 50,000 tokens the set is small however it is cut.
MIN_VALIDATION_DOCUMENTS = 20
MIN_VALIDATION_TOKENS = 50_000

# Exact duplicates within a validation set count one text several times in the domain's mean; a
# few percent moves it by less than the noise above, so the note starts at 5%.
DUPLICATE_SHARE = 0.05
# A validation document that is also in training is scored by a model that has seen it, and the
# more weight its domain gets the better it scores: that favours mixtures upweighting the domain,
# which is what is being compared. Noted from 1%. (A hash split never does this: exact duplicates
# go to one split; given train/ and validation/ folders can.)
IN_TRAIN_SHARE = 0.01

# Repeating data beyond about 4 epochs stops helping (Muennighoff et al., arXiv 2305.16264; the
# default repetition cap of `mixtune run`).
MAX_EPOCHS = DEFAULT_MAX_EPOCHS
# Under 50 training documents with more than 1% of the weight, a model learns those texts rather
# than the domain, whatever the epochs of one run.
FEW_TRAIN_DOCUMENTS = 50
FEW_DOCUMENTS_WEIGHT = 0.01

# The order of a domain's notes.
_SMALL, _DUPLICATES, _IN_TRAIN, _MIXTURE = range(4)


def data_notes(manifest: dict | Manifest, mixtures: dict[str, dict[str, float]],
               main_tokens: int | None, max_epochs: float | None = MAX_EPOCHS) -> list[str]:
    """Plain-text notes on `manifest` (manifest.json as a dict, or a `Manifest`) and `mixtures`
    (name -> {domain: weight}, normalised here) for main runs of `main_tokens` training tokens
    (None: unknown, so no passes are counted): a mixture repeating a domain more than
    `max_epochs` times (the run's cap; None, no cap: MAX_EPOCHS) is noted."""
    limit = MAX_EPOCHS if max_epochs is None else max_epochs
    if isinstance(manifest, Manifest):
        manifest = manifest.to_json()
    train, val = _entries(manifest, "train"), _entries(manifest, "validation")
    notes: list[tuple[str, int, str, str]] = []
    for d in _domains(manifest, train, val):
        notes += [(d, kind, "", text) for kind, text in _validation_notes(d, val.get(d))]
    notes = _every_domain_small(notes, val)
    for name, weights in mixtures.items():
        for d, w in _normalised(weights).items():
            text = _mixture_note(name, d, w, train.get(d), main_tokens, limit)
            if text is not None:
                notes.append((d, _MIXTURE, name, text))
    return [text for *_, text in sorted(notes)]


def _every_domain_small(notes: list[tuple], val: dict[str, dict]) -> list[tuple]:
    """One note instead of one per domain when every domain's validation set is small (generated
    data, a small corpus): the same caution, said once."""
    small = [n for n in notes if n[1] == _SMALL and "no validation documents" not in n[3]]
    if len(small) < 2 or len(small) < len(val):
        return notes
    docs = min(_count(val[d], "documents") for d, *_ in small)
    tokens = min(_count(val[d], "tokens") for d, *_ in small)
    merged = ("", _SMALL, "", f"every domain's validation set is small (the smallest: "
              f"{_docs(docs)}, {tokens:,} tokens): per-domain and worst-case numbers rest on few "
              "documents; compare mixtures on the average, over several seeds")
    return [merged] + [n for n in notes if n not in small]


def _validation_notes(domain: str, entry: dict | None) -> list[tuple[int, str]]:
    if entry is None:
        return []
    docs, tokens = _count(entry, "documents"), _count(entry, "tokens")
    if docs is None or tokens is None:
        return []
    if docs == 0:
        return [(_SMALL, f"{domain}: it has no validation documents: it has no per-domain number "
                         "and the worst case leaves it out")]
    notes = []
    if docs < MIN_VALIDATION_DOCUMENTS or tokens < MIN_VALIDATION_TOKENS:
        notes.append((_SMALL, f"{domain}: its validation set is {_docs(docs)} ({tokens:,} tokens): "
                              "its per-domain and worst-case numbers rest on "
                              f"{'it' if docs == 1 else 'them'}"))
    dups, in_train = _count(entry, "duplicates"), _count(entry, "in_train")
    if dups and dups / docs >= DUPLICATE_SHARE:
        notes.append((_DUPLICATES, f"{_pct(dups / docs)} of the validation documents of {domain} "
                                   f"are exact duplicates ({dups:,} of {docs:,}): their texts "
                                   "count more than once in its validation loss"))
    if in_train and in_train / docs >= IN_TRAIN_SHARE:
        are, them = ("is", "it") if in_train == 1 else ("are", "them")
        notes.append((_IN_TRAIN, f"{_docs(in_train, 'validation ')} of {domain} "
                                 f"({_pct(in_train / docs)}) {are} also in its training split: "
                                 f"models score {them} better the more weight the domain gets"))
    return notes


def _mixture_note(name: str, domain: str, weight: float, entry: dict | None,
                  main_tokens: int | None, max_epochs: float) -> str | None:
    """The note on `name` giving `domain` `weight` (of 1), if it repeats the domain's training
    text more than `max_epochs` times or weighs a domain of few documents."""
    docs = _count(entry or {}, "documents")
    tokens = _count(entry or {}, "tokens")
    if weight <= 0 or not docs or not tokens:
        return None
    epochs = weight * main_tokens / tokens if main_tokens else None
    few = docs < FEW_TRAIN_DOCUMENTS and weight > FEW_DOCUMENTS_WEIGHT
    if not few and (epochs is None or epochs <= max_epochs):
        return None
    head = (f"mixture {name} gives domain {domain} ({_docs(docs, 'training ')}, {tokens:,} "
            f"tokens) {_pct(weight)} of the weight")
    if epochs is None:
        return f"{head}: few documents to learn the domain from, repeated in any long run"
    passes = ("less than 0.1" if epochs < 0.1 else f"about {epochs:.1f}" if epochs < 10
              else f"about {epochs:,.0f}")
    return f"{head}: {passes} passes over its training text in a main run of {main_tokens:,} tokens"


# -- reading the manifest leniently (a report describes what it can) ----------------------------


def _entries(manifest: dict, split: str) -> dict[str, dict]:
    splits = manifest.get("splits") if isinstance(manifest, dict) else None
    entries = splits.get(split) if isinstance(splits, dict) else None
    if not isinstance(entries, dict):
        return {}
    return {d: c for d, c in entries.items() if isinstance(c, dict)}


def _domains(manifest: dict, *splits: dict[str, dict]) -> list[str]:
    listed = manifest.get("domains") if isinstance(manifest, dict) else None
    names = listed if isinstance(listed, list) else [d for s in splits for d in s]
    return sorted({d for d in names if isinstance(d, str)})


def _count(entry: dict, key: str) -> int | None:
    """A count from a manifest entry; None when absent (unknown) or not a count."""
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _normalised(weights) -> dict[str, float]:
    """{domain: weight / total} over the finite positive weights; {} for none."""
    if not isinstance(weights, dict):
        return {}
    good = {}
    for d, w in weights.items():
        try:
            w = float(w)
        except (TypeError, ValueError):
            continue
        if math.isfinite(w) and w > 0:
            good[d] = w
    total = sum(good.values())
    return {d: w / total for d, w in good.items()} if total > 0 else {}


def _docs(n: int, kind: str = "") -> str:
    return f"{n:,} {kind}document{'' if n == 1 else 's'}"


def _pct(share: float) -> str:
    """28%, 6.5%, 0.4%: whole percent from 10% up, else one decimal."""
    return f"{share:.0%}" if share >= 0.1 else f"{share:.1%}"
