"""A new task format is one class and one registration line: a toy format, defined and registered
in this file alone, read from a user's file and from a task folder, and scored end to end through
the entry point every task goes through (`evaluate_tasks`)."""

import json

import pytest
import torch
from transformers import AutoTokenizer

from mixtune.data.store import open_dataset
from mixtune.errors import UserError
from mixtune.eval import formats, metrics
from mixtune.eval.downstream import Runtime, evaluate_tasks
from mixtune.eval.formats import TEXT, Prompt, TaskFormat
from mixtune.eval.tasks import TaskSpec, load_task
from mixtune.model.build import build_model

CPU = torch.device("cpu")


class MinimalPair(TaskFormat):
    """BLiMP-style minimal pairs: right when the good continuation is at least as likely as the
    bad one."""

    name = "minimal_pair"
    fields = {"context": TEXT, "good": TEXT, "bad": TEXT}
    metric_names = ("acc", "bpb")
    primary = "acc"

    def answered(self, item, delimiter):
        return item["context"] + delimiter + item["good"]

    def prompt(self, item, head, delimiter):
        return Prompt([head + item["context"]], [delimiter + item["good"], delimiter + item["bad"]])

    def item_metrics(self, prompt, scores, generated):
        good, bad = scores[0]
        return {"acc": float(good.logprob >= bad.logprob),
                "bpb": metrics.bits_per_byte(good.logprob, prompt.continuations[0])}


@pytest.fixture
def minimal_pair():
    fmt = formats.register(MinimalPair())
    yield fmt
    del formats.FORMATS[fmt.name]  # the registry is the process's: leave it as the others see it


@pytest.fixture(scope="module")
def setup(synthetic_dataset):
    ds = open_dataset(synthetic_dataset)
    tok = AutoTokenizer.from_pretrained(ds.tokenizer_dir)
    model = build_model("tiny", ds.vocab_size, 64, ds.eos_id, seed=0).eval()
    return tok, model


PAIRS = [{"context": f"t{i} t{i + 1} t{i + 2}", "good": f"t{i + 3}", "bad": f"t{(7 * i) % 50 + 1}"}
         for i in range(10)]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_registered_format_is_scored_like_a_built_in_one(minimal_pair, setup, tmp_path):
    tok, model = setup
    pairs = write_jsonl(tmp_path / "pairs.jsonl", PAIRS)  # its format read from its keys
    folder = tmp_path / "installed" / "pairs_task"  # and a task folder that names it
    folder.mkdir(parents=True)
    spec = TaskSpec("pairs_task", "minimal_pair", shots=1, random_baseline=0.5, n=len(PAIRS))
    (folder / "task.json").write_text(json.dumps(spec.to_json()))
    write_jsonl(folder / "test.jsonl", PAIRS)
    # The same items as multiple choice, gold first: the same prompts, so the same numbers.
    choice = write_jsonl(tmp_path / "choice.jsonl", [
        {"query": p["context"], "choices": [p["good"], p["bad"]], "gold": 0} for p in PAIRS])

    r = evaluate_tasks(model, tok, [str(pairs), "pairs_task", str(choice)], Runtime(CPU),
                       shots=1, roots=[tmp_path / "installed"])
    mine, installed, mc = r.tasks[str(pairs)], r.tasks["pairs_task"], r.tasks[str(choice)]
    assert (mine.format, mine.n, mine.shots, mine.primary) == ("minimal_pair", 10, 1, "acc")
    assert mine.acc == mc.acc and mine.bpb == mc.bpb and mine.bpb > 0
    assert mine.acc_norm is None and mine.gold_prob is None  # only the format's own metrics
    assert mine.acc_centered == mine.acc  # a bare file's baseline is 0
    assert installed.acc_centered == pytest.approx((installed.acc - 0.5) / 0.5)


def test_an_unregistered_format_is_refused(tmp_path):
    (tmp_path / "task.json").write_text(json.dumps(TaskSpec("t", "minimal_pair").to_json()))
    write_jsonl(tmp_path / "test.jsonl", PAIRS)
    with pytest.raises(UserError, match="format 'minimal_pair'; use one of multiple_choice"):
        load_task(tmp_path)
    with pytest.raises(UserError, match=r"keys \['bad', 'context', 'good'\] match no task format"):
        load_task(tmp_path / "test.jsonl")


def test_its_items_are_checked(minimal_pair, tmp_path):
    bad = write_jsonl(tmp_path / "p.jsonl", [PAIRS[0], {**PAIRS[1], "bad": 3}])
    with pytest.raises(UserError, match=r"p.jsonl:2: 'bad' must be a string, not int"):
        load_task(bad)
