"""Write a small, real, multi-domain text corpus from files every Python installation has on disk,
so that the examples run from a clone with nothing to download:

    python examples/make_corpus.py corpus            # then: mixtune run examples/local_corpus.yaml

    corpus/python_code/part-0.jsonl.zst    the standard library's .py files
    corpus/c_headers/part-0.jsonl.zst      Python's C headers (and /usr/include on Linux)
    corpus/package_docs/part-0.jsonl.zst   the long descriptions of installed packages (prose)
    corpus/licenses/part-0.jsonl.zst       license texts of installed packages (and the system's)

One document per file, at most --max-mb of text per domain, in sorted order (the same machine
gives the same corpus). `mixtune prepare` hash-splits it into train and validation. The texts
stay on your machine: they are read from your installation, never committed or published.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import zstandard

LICENSE_NAMES = ("LICENSE", "LICENCE", "COPYING", "NOTICE")


def files(root: Path, pattern: str) -> Iterator[Path]:
    yield from sorted(p for p in root.rglob(pattern) if p.is_file()) if root.is_dir() else ()


def read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None  # binary, unreadable or not UTF-8: not a text document


def python_code() -> Iterator[str]:
    for path in files(Path(sysconfig.get_paths()["stdlib"]), "*.py"):
        yield read(path)


def c_headers() -> Iterator[str]:
    for root in (Path(sysconfig.get_paths()["include"]), Path("/usr/include")):
        for path in files(root, "*.h"):
            yield read(path)


def distributions() -> list[importlib.metadata.Distribution]:
    return sorted(importlib.metadata.distributions(), key=lambda d: d.metadata["Name"] or "")


def package_docs() -> Iterator[str]:
    for dist in distributions():
        yield dist.metadata.get_payload() or dist.metadata.get("Description")


def licenses() -> Iterator[str]:
    for dist in distributions():
        for f in sorted(dist.files or [], key=str):
            if f.name.upper().startswith(LICENSE_NAMES):
                yield read(Path(dist.locate_file(f)))
    for path in files(Path("/usr/share/common-licenses"), "*"):
        yield read(path)


DOMAINS = {"python_code": python_code, "c_headers": c_headers, "package_docs": package_docs,
           "licenses": licenses}


def write_domain(out: Path, texts: Iterator[str | None], max_chars: int) -> int:
    out.mkdir(parents=True, exist_ok=True)
    seen, total, n = set(), 0, 0
    with zstandard.open(out / "part-0.jsonl.zst", "wt", encoding="utf-8") as f:
        for text in texts:
            if not text or not text.strip() or text in seen:
                continue  # empty, unreadable, or the same file installed twice
            seen.add(text)
            f.write(json.dumps({"text": text}) + "\n")
            total, n = total + len(text), n + 1
            if total >= max_chars:
                break
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="folder to write (one subfolder per domain)")
    ap.add_argument("--max-mb", type=float, default=2.0, help="text per domain (default: 2)")
    args = ap.parse_args()
    for name, texts in DOMAINS.items():
        n = write_domain(Path(args.out) / name, texts(), int(args.max_mb * 1e6))
        print(f"{name:<14} {n:>6} documents")
    print(f"corpus: {args.out}")


if __name__ == "__main__":
    main()
