"""Per-item metrics of downstream tasks, from the scores of their continuations.

Choice tasks (multiple_choice, schema): the model's choice is the option whose continuation is
most likely, by one of three rules, each a standard:

    acc            largest sum of log-probabilities             (lm-evaluation-harness `acc`)
    acc_norm       largest sum divided by the choice's length   (lm-evaluation-harness `acc_norm`,
                   in characters, without the delimiter)
    acc_per_token  largest mean log-probability per token       (llm-foundry's, so DCLM's CORE)

and two continuous measures that still move when accuracy is at chance (DataDecide, arXiv
2504.11393): `gold_prob`, the softmax over the choices' summed log-probabilities at the gold one,
and `bpb`, the gold continuation's bits per UTF-8 byte (−log₂ p / bytes).

Language modelling: `acc` is an exact greedy match (every continuation token is the argmax);
`bpb` as above. Generative QA: `acc` is an exact match of the greedy answer's first line with any
accepted answer, both lower-cased with punctuation and extra spaces removed; `bpb` is the first
accepted answer's.
"""

from __future__ import annotations

import math
import re
import string
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # scoring imports torch; metrics are plain arithmetic
    from mixtune.eval.scoring import Scored

LN2 = math.log(2)
CHOICE_METRICS = ("acc", "acc_norm", "acc_per_token", "gold_prob", "bpb")


def bits_per_byte(logprob: float, text: str) -> float:
    return -logprob / LN2 / max(len(text.encode("utf-8")), 1)


def choices(scores: list[Scored], gold: int, lengths: list[int], continuations: list[str]) -> dict:
    """Metrics of one choice item. `lengths`: characters of each choice (lm-eval's acc_norm);
    `continuations`: the scored strings (one per option; for a schema item, the same one)."""
    lp = np.array([s.logprob for s in scores])
    tokens = np.array([s.tokens for s in scores], dtype=float)
    chars = np.maximum(np.array(lengths, dtype=float), 1.0)
    p = np.exp(lp - lp.max())
    gold_text = continuations[gold] if len(continuations) > 1 else continuations[0]
    return {
        "acc": float(np.argmax(lp) == gold),  # argmax: the first of tied options, as lm-eval
        "acc_norm": float(np.argmax(lp / chars) == gold),
        "acc_per_token": float(np.argmax(lp / tokens) == gold),
        "gold_prob": float(p[gold] / p.sum()),
        "bpb": bits_per_byte(float(lp[gold]), gold_text),
    }


def language_modeling(score: Scored, continuation: str) -> dict:
    return {"acc": float(score.greedy), "bpb": bits_per_byte(score.logprob, continuation)}


def normalize_answer(text: str) -> str:
    text = text.lower().translate(str.maketrans("", "", string.punctuation))
    return re.sub(r"\s+", " ", text).strip()


def exact_match(generated: str, answers: list[str]) -> float:
    """1.0 when the first line of `generated` equals an accepted answer, after normalisation."""
    first_line = generated.lstrip().split("\n", 1)[0]
    guess = normalize_answer(first_line)
    return float(any(guess == normalize_answer(a) for a in answers))


def question_answering(generated: str, answers: list[str], gold: Scored, gold_text: str) -> dict:
    return {"acc": exact_match(generated, answers), "bpb": bits_per_byte(gold.logprob, gold_text)}
