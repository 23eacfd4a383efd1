"""A generated raw corpus with planted junk, to measure what each processing operation removes.

Clean documents are English prose made of random sentences (several paragraphs, varied words),
which every web heuristic keeps. The junk: exact duplicates (case and spacing changed),
near-duplicates (a few words changed), paragraphs repeated from another document, boilerplate
lines, documents in German and French, too-short pages and symbol-heavy pages.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import zstandard

NOUNS = ["river", "garden", "teacher", "village", "market", "letter", "station", "forest", "window", "council", "engine", "harbor", "doctor", "library", "bridge", "mountain", "kitchen", "farmer", "painter", "museum", "student", "island", "winter", "theater", "journey", "machine", "factory", "captain", "summer", "valley", "company", "meeting", "question", "picture", "neighbor", "festival", "lantern", "orchard", "college", "highway", "network", "bakery", "cottage", "engineer", "officer", "meadow", "chapter", "ceremony", "harvest", "laboratory", "newspaper", "fountain", "mirror", "blanket", "compass"]
VERBS = ["visited", "repaired", "described", "opened", "painted", "carried", "followed", "noticed", "watched", "explained", "finished", "discovered", "prepared", "measured", "remembered", "collected", "studied", "welcomed", "protected", "improved", "delivered", "answered", "organized", "recorded", "examined", "borrowed", "imagined", "defended", "launched", "planted"]
ADJECTIVES = ["quiet", "ancient", "narrow", "bright", "careful", "distant", "gentle", "heavy", "modern", "patient", "rapid", "simple", "sudden", "famous", "honest", "curious", "golden", "humble", "lively", "rural", "silent", "steady", "urban", "wooden", "elegant", "fragile", "generous"]
ADVERBS = ["slowly", "quickly", "carefully", "often", "rarely", "quietly", "eagerly", "gladly", "suddenly", "finally", "proudly", "warmly"]
PLACES = ["near the river", "behind the station", "across the valley", "inside the museum",
          "along the highway", "under the bridge", "beside the orchard", "within the village"]

GERMAN = ["der", "die", "das", "und", "ist", "nicht", "ein", "eine", "mit", "von", "zu", "auf", "für", "sich", "dem", "den", "auch", "es", "an", "werden", "aus", "er", "hat", "dass", "sie", "nach", "wird", "bei", "einer", "um", "am", "sind", "noch", "wie", "einem", "über", "so", "zum", "war", "haben", "nur", "oder", "aber", "vor", "zur", "bis", "mehr", "durch", "man", "dann", "soll", "Stadt", "Haus", "Leute", "Jahr", "Arbeit", "Wasser", "Garten", "Schule", "Straße", "Brücke", "Zeitung", "gestern", "heute", "morgen", "immer", "wieder", "schnell", "langsam"]
FRENCH = ["le", "la", "les", "et", "est", "pas", "un", "une", "avec", "de", "du", "pour", "sur", "dans", "qui", "que", "il", "elle", "nous", "vous", "ils", "sont", "était", "avait", "fait", "plus", "mais", "comme", "tout", "bien", "aussi", "très", "après", "avant", "maison", "ville", "jardin", "école", "rue", "pont", "journal", "hier", "aujourd'hui", "demain", "toujours", "encore", "vite", "lentement"]

BOILERPLATE = ["Sign in", "Read more", "12 likes", "HOME | ABOUT US | CONTACT | SHOP",
               "347 comments", "2024"]


def sentence(rng: random.Random) -> str:
    words = [rng.choice(["The", "A", "Our", "Every"]), rng.choice(ADJECTIVES), rng.choice(NOUNS),
             "of", "the", rng.choice(NOUNS), rng.choice(ADVERBS), rng.choice(VERBS), "the",
             rng.choice(ADJECTIVES), rng.choice(NOUNS), rng.choice(PLACES)]
    if rng.random() < 0.5:
        words += [rng.choice(["and", "while", "with"]), "the", rng.choice(NOUNS),
                  rng.choice(VERBS), "a", rng.choice(NOUNS)]
    return " ".join(words) + "."


def paragraph(rng: random.Random) -> str:
    return " ".join(sentence(rng) for _ in range(rng.randint(4, 6)))


def clean_document(rng: random.Random) -> str:
    return "\n".join(paragraph(rng) for _ in range(rng.randint(3, 5)))


def foreign_document(rng: random.Random, words: list[str]) -> str:
    sentences = [" ".join(rng.choice(words) for _ in range(rng.randint(8, 14))).capitalize() + "."
                 for _ in range(rng.randint(12, 20))]
    return " ".join(sentences)


def near_duplicate(rng: random.Random, text: str, changes: int = 4) -> str:
    words = text.split(" ")
    for i in rng.sample(range(len(words)), changes):
        words[i] = rng.choice(NOUNS)
    return " ".join(words)


@dataclass
class Corpus:
    """Texts by kind; `docs` are (domain, split, text) in writing order."""

    docs: list[tuple[str, str | None, str]] = field(default_factory=list)
    kinds: dict[str, list[str]] = field(default_factory=dict)
    repeated_paragraphs: list[str] = field(default_factory=list)
    """The documents repeating a paragraph, without it."""
    boilerplate_docs: list[str] = field(default_factory=list)
    """The documents with boilerplate lines, without them."""
    original: dict[str, str] = field(default_factory=dict)
    """Each exact or near duplicate -> the clean document it copies."""

    def add(self, kind: str, domain: str, split: str | None, text: str) -> None:
        self.docs.append((domain, split, text))
        self.kinds.setdefault(kind, []).append(text)

    def texts(self, *kinds: str) -> set[str]:
        return {t for k in kinds for t in self.kinds.get(k, [])}


def make_corpus(root: Path, *, clean: int = 60, seed: int = 0, splits: bool = True,
                files_per_domain: int = 3, domains: tuple[str, ...] = ("forum", "web"),
                shuffle: bool = True, pile: bool = False) -> Corpus:
    """Write ROOT/[train|validation/]<domain>/part-<i>.jsonl.zst (or, `pile`, the Pile's layout:
    ROOT/pile.jsonl.zst with the domain in meta.pile_set_name); return what was planted.
    Unshuffled, the clean documents come first and every copy after its original."""
    rng = random.Random(seed)
    c = Corpus()
    domains = list(domains)
    originals = []
    for i in range(clean):
        text = clean_document(rng)
        originals.append(text)
        c.add("clean", domains[i % len(domains)], _split(rng, splits), text)
    for text in rng.sample(originals, clean // 6):  # exact duplicates, spacing changed
        copy = text.replace(". ", ".   ", 3) + "  "
        c.original[copy] = text
        c.add("exact", rng.choice(domains), _split(rng, splits), copy)
    for text in rng.sample(originals, clean // 6):
        copy = near_duplicate(rng, text)
        c.original[copy] = text
        c.add("near", rng.choice(domains), _split(rng, splits), copy)
    for text in rng.sample(originals, clean // 6):  # a new document repeating a paragraph
        repeated = rng.choice(text.split("\n"))
        own = [paragraph(rng) for _ in range(3)]
        c.repeated_paragraphs.append("\n".join(own))  # what is left once it is cut
        c.add("repeated_paragraph", rng.choice(domains), _split(rng, splits),
              "\n".join([own[0], repeated, own[1], own[2]]))
    for _ in range(clean // 6):  # boilerplate lines around clean prose
        body = clean_document(rng).split("\n")
        lines = [rng.choice(BOILERPLATE[:2]), *body[:1], rng.choice(BOILERPLATE[2:4]), *body[1:],
                 rng.choice(BOILERPLATE)]
        c.boilerplate_docs.append("\n".join(body))
        c.add("boilerplate", rng.choice(domains), _split(rng, splits), "\n".join(lines))
    for i in range(clean // 6):
        words = GERMAN if i % 2 == 0 else FRENCH
        c.add("foreign", rng.choice(domains), _split(rng, splits), foreign_document(rng, words))
    for _ in range(clean // 6):
        c.add("short", rng.choice(domains), _split(rng, splits),
              rng.choice(["Click here.", "Page not found", "Welcome!", "Home page"]))
    for _ in range(clean // 6):
        c.add("symbols", rng.choice(domains), _split(rng, splits),
              " ".join(rng.choice(["#####", "$$$", "@@", "&&&&", "%%", "|||", "***"])
                       for _ in range(rng.randint(60, 120))))
    if shuffle:
        order = list(range(len(c.docs)))
        rng.shuffle(order)
        c.docs = [c.docs[i] for i in order]
    if pile:
        root.mkdir(parents=True, exist_ok=True)
        lines = "".join(json.dumps({"text": t, "meta": {"pile_set_name": d}}) + "\n"
                        for d, _s, t in c.docs)
        (root / "pile.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(lines.encode()))
    else:
        _write(root, c.docs, files_per_domain)
    return c


def _split(rng: random.Random, splits: bool) -> str | None:
    if not splits:
        return None
    return "validation" if rng.random() < 0.15 else "train"


def _write(root: Path, docs, files_per_domain: int) -> None:
    groups: dict[tuple, list[str]] = {}
    for domain, split, text in docs:
        groups.setdefault((split, domain), []).append(text)
    for (split, domain), texts in groups.items():
        folder = root.joinpath(*([split] if split else []), domain)
        folder.mkdir(parents=True, exist_ok=True)
        for part in range(files_per_domain):
            lines = "".join(json.dumps({"text": t}) + "\n" for t in texts[part::files_per_domain])
            (folder / f"part-{part}.jsonl.zst").write_bytes(
                zstandard.ZstdCompressor().compress(lines.encode()))


def read_output(root: Path) -> list[tuple[str, str | None, str]]:
    """(domain, split, text) of every document of a processed corpus."""
    out = []
    for path in sorted(root.rglob("*.jsonl.zst")):
        rel = path.relative_to(root).parts
        split, domain = (rel[0], rel[1]) if len(rel) == 3 else (None, rel[0])
        data = zstandard.ZstdDecompressor().stream_reader(path.read_bytes()).read().decode()
        out += [(domain, split, json.loads(line)["text"]) for line in data.splitlines()]
    return out
