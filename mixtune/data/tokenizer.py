"""Tokenizers: train a byte-level BPE locally, or load any Hugging Face tokenizer from disk.

Everything is saved as a Hugging Face tokenizer folder, so `AutoTokenizer.from_pretrained` (and the
`final/` model folders that copy it) load it with no custom code and no Hub access. A full disk
while saving or copying one is a UserError naming the folder (`_writing_tokenizer`); the caller
stages the folder and removes what was half written.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from mixtune.errors import UserError
from mixtune.io import no_space_errno, no_space_message, writing

EOS = "<|endoftext|>"
# The files of an HF tokenizer folder; copied without the model files a folder may also hold.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
)


def copy_tokenizer_files(src: Path, dst: Path) -> None:
    """Copy the tokenizer files present in folder `src` into `dst` (created if needed)."""
    with _writing_tokenizer(dst):
        dst.mkdir(parents=True, exist_ok=True)
        for name in TOKENIZER_FILES:
            if (src / name).is_file():
                shutil.copy2(src / name, dst / name)


def train_bpe(texts: Iterable[str], vocab_size: int) -> Tokenizer:
    """Byte-level BPE (GPT-2 style) trained on `texts`; the Rust trainer uses every core."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def save_tokenizer(tok: Tokenizer, out_dir: Path, eos_token: str = EOS) -> None:
    """Save as an HF tokenizer folder (tokenizer.json + tokenizer_config.json)."""
    from transformers import PreTrainedTokenizerFast

    out_dir = Path(out_dir)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=eos_token)
    with _writing_tokenizer(out_dir):
        out_dir.mkdir(parents=True, exist_ok=True)
        fast.save_pretrained(str(out_dir))


@contextmanager
def _writing_tokenizer(folder: Path) -> Iterator[None]:
    """`io.writing` for a tokenizer folder, whichever writer (Python's or Rust's) met the full
    disk or quota: a UserError naming `folder`; any other error stays what it is."""
    try:
        with writing(folder):
            yield
    except Exception as err:  # re-raised unless it is the Rust writer's full disk
        code = no_space_errno(err)  # tokenizer.json's writer raises a plain Exception naming it
        if code is None:
            raise
        raise UserError(no_space_message(folder, OSError(code, os.strerror(code)))) from None


def load_tokenizer(spec: str | os.PathLike) -> tuple[Tokenizer, str]:
    """Load a tokenizer from an HF folder or a tokenizer.json; return it and its EOS token.

    The EOS token comes from the folder's tokenizer_config.json / special_tokens_map.json when
    present, else the first of a few conventional names found in the vocabulary.
    """
    path = Path(spec)
    file = path / "tokenizer.json" if path.is_dir() else path
    if not file.is_file():
        raise UserError(
            f"--tokenizer {spec}: no tokenizer.json there. Pass a Hugging Face tokenizer folder "
            "(as saved by save_pretrained) or a tokenizer.json file."
        )
    try:
        tok = Tokenizer.from_file(str(file))
    except Exception as e:  # the Rust loader raises plain Exceptions
        raise UserError(f"{file}: not a loadable tokenizers JSON file ({e}).") from None
    eos = _configured_eos(file.parent) or next(
        (t for t in (EOS, "</s>", "<eos>", "<|end_of_text|>") if tok.token_to_id(t) is not None),
        None,
    )
    if eos is not None and tok.token_to_id(eos) is None:
        raise UserError(
            f"{file}: the end-of-sequence token {eos!r} is not in the vocabulary; fix eos_token."
        )
    if eos is None:
        raise UserError(
            f"{file}: no end-of-sequence token found (looked in tokenizer_config.json and for "
            f"{EOS}, </s>, <eos>). Add one with eos_token in tokenizer_config.json."
        )
    return tok, eos


def _configured_eos(folder: Path) -> str | None:
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        f = folder / name
        if f.is_file():
            eos = json.loads(f.read_text()).get("eos_token")
            if isinstance(eos, dict):
                eos = eos.get("content")
            if isinstance(eos, str):
                return eos
    return None
