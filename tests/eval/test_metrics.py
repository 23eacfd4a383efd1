"""Each downstream metric against values computed by hand."""

import math

import pytest

from mixtune.eval import metrics
from mixtune.eval.scoring import Scored


def test_choice_metrics_by_hand():
    # Three options. Sums of log-probs -2, -1.5, -3 over 2, 1, 4 tokens; choices of 4, 2, 10 chars.
    scores = [Scored(-2.0, 2, False), Scored(-1.5, 1, True), Scored(-3.0, 4, False)]
    conts = [" abcd", " ab", " abcdefghij"]
    m = metrics.choices(scores, gold=2, lengths=[4, 2, 10], continuations=conts)
    assert m["acc"] == 0.0  # the largest sum is option 1 (-1.5)
    assert m["acc_norm"] == 1.0  # per character: -0.5, -0.75, -0.3 -> option 2
    assert m["acc_per_token"] == 1.0  # per token: -1, -1.5, -0.75 -> option 2
    z = math.exp(-2) + math.exp(-1.5) + math.exp(-3)
    assert m["gold_prob"] == pytest.approx(math.exp(-3) / z)
    assert m["bpb"] == pytest.approx(3.0 / math.log(2) / 11)  # " abcdefghij" is 11 bytes


def test_ties_go_to_the_first_option_and_schema_uses_the_shared_continuation():
    scores = [Scored(-1.0, 1, True), Scored(-1.0, 1, True)]
    m = metrics.choices(scores, gold=1, lengths=[3, 3], continuations=[" end"])
    assert m["acc"] == 0.0 and m["gold_prob"] == pytest.approx(0.5)
    assert m["bpb"] == pytest.approx(1.0 / math.log(2) / 4)


def test_language_modeling():
    m = metrics.language_modeling(Scored(-math.log(2) * 6, 3, True), " word")
    assert m == {"acc": 1.0, "bpb": pytest.approx(6 / 5)}
    assert metrics.language_modeling(Scored(-1.0, 3, False), " w")["acc"] == 0.0


@pytest.mark.parametrize(
    "generated, answers, expected",
    [
        (" Paris.\nQuestion: next", ["paris"], 1.0),  # first line, punctuation, case
        ("The  Beatles!", ["the beatles"], 1.0),  # extra spaces
        ("London", ["Paris", "paris, france"], 0.0),
        ("Paris France", ["Paris, France"], 1.0),  # any alias, normalised the same way
        ("", ["x"], 0.0),
    ],
)
def test_exact_match(generated, answers, expected):
    assert metrics.exact_match(generated, answers) == expected


def test_utf8_bytes_not_characters():
    assert metrics.bits_per_byte(-math.log(2) * 4, " é") == pytest.approx(4 / 3)
