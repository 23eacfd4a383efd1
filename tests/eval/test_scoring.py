"""The scoring engine: exact log-probabilities from a model whose log-probs are known, and the
shared-context batching against scoring each sequence alone."""

import math
import random
from types import SimpleNamespace

import torch

from mixtune.eval.scoring import Group, loglikelihoods
from mixtune.model.build import build_model

CPU = torch.device("cpu")


class Bigram(torch.nn.Module):
    """Next-token log-probs depend on the current token only: `table[current]`."""

    def __init__(self, table: torch.Tensor):
        super().__init__()
        self.table = table
        self.config = SimpleNamespace(max_position_embeddings=64)

    def forward(self, input_ids, attention_mask=None, position_ids=None, past_key_values=None,
                use_cache=None, logits_to_keep=0):
        logits = self.table[input_ids]
        if isinstance(logits_to_keep, torch.Tensor):
            logits = logits[:, logits_to_keep]
        return SimpleNamespace(logits=logits, past_key_values=SimpleNamespace(reorder_cache=lambda i: None))


def bigram():
    # p(next | current): from token t, token (t + 1) % 4 has probability 0.7, every other 0.1.
    probs = torch.full((4, 4), 0.1)
    for t in range(4):
        probs[t, (t + 1) % 4] = 0.7
    return Bigram(probs.log())


def test_log_probabilities_and_greedy_by_hand():
    groups = [Group([0, 1], [[2, 3], [3], [2, 0]]), Group([3], [[0, 1, 2]])]
    (a, b, c), (d,) = loglikelihoods(bigram(), groups, device=CPU)
    assert math.isclose(a.logprob, 2 * math.log(0.7), rel_tol=1e-6) and a.greedy and a.tokens == 2
    assert math.isclose(b.logprob, math.log(0.1), rel_tol=1e-6) and not b.greedy
    assert math.isclose(c.logprob, math.log(0.7) + math.log(0.1), rel_tol=1e-6) and not c.greedy
    assert math.isclose(d.logprob, 3 * math.log(0.7), rel_tol=1e-6) and d.greedy


def test_shared_contexts_equal_scoring_each_sequence_alone():
    model = build_model("tiny", 300, 64, 0, seed=1).eval()
    rng = random.Random(0)
    groups = [
        Group([rng.randrange(1, 300) for _ in range(rng.randint(1, 30))],
              [[rng.randrange(1, 300) for _ in range(rng.randint(1, 6))]
               for _ in range(rng.randint(1, 4))])
        for _ in range(9)
    ]
    # A small token budget splits the groups over several batches of mixed lengths.
    results = loglikelihoods(model, groups, device=CPU, batch_tokens=64)
    for g, scored in zip(groups, results, strict=True):
        for cont, s in zip(g.continuations, scored, strict=True):
            with torch.no_grad():
                lp = model(input_ids=torch.tensor([g.context + cont])).logits.log_softmax(-1)[0]
            span = lp[len(g.context) - 1 : len(g.context) - 1 + len(cont)]
            alone = span.gather(-1, torch.tensor(cont)[:, None]).sum().item()
            assert abs(alone - s.logprob) < 1e-4
            assert s.greedy == bool((span.argmax(-1) == torch.tensor(cont)).all())


def test_long_contexts_keep_their_newest_tokens():
    model = build_model("tiny", 300, 64, 0, seed=1).eval()
    long = Group(list(range(1, 101)), [[5, 6]])
    short = Group(list(range(91, 101)), [[5, 6]])  # the last 10 tokens: what a window of 12 sees
    (a,), (b,) = loglikelihoods(model, [long, short], device=CPU, max_len=12)
    assert abs(a.logprob - b.logprob) < 1e-4


def test_scoring_uses_no_deprecated_cache_name():
    """Reusing the context's KV cache, and generating, name it as the installed transformers
    does: its deprecation notices (a FutureWarning, and a log line once per process) would
    otherwise appear at every evaluation of a training run."""
    import logging
    import warnings

    from mixtune.eval.scoring import generate

    model = build_model("tiny", 300, 64, 0, seed=1).eval()
    once = getattr(logging.Logger.warning_once, "cache_clear", None)  # transformers' once-only log
    if once is not None:
        once()
    logged: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: logged.append(record.getMessage())
    hf_log = logging.getLogger("transformers")
    hf_log.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # Continuations of several tokens: the second pass runs on the contexts' cache.
            loglikelihoods(model, [Group([1, 2, 3], [[4, 5, 6], [7, 8]])], device=CPU)
            generate(model, [[1, 2, 3]], max_new_tokens=3, eos_id=0, device=CPU)
    finally:
        hf_log.removeHandler(handler)
    notices = [str(w.message) for w in caught] + logged
    assert not [m for m in notices if "past_key_values" in m or "deprecated" in m], notices
