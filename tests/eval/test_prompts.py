"""Few-shot assembly: what each format's prompt is, and which examples it draws."""

import pytest

from mixtune.errors import UserError
from mixtune.eval.prompts import render, shots_for
from mixtune.eval.tasks import Task, TaskSpec


def mc_task(n=6, pool=4, **spec):
    items = [{"query": f"Q{i}:", "choices": [f"a{i}", f"b{i}"], "gold": i % 2} for i in range(n)]
    fewshot = [{"query": f"P{i}:", "choices": [f"x{i}", f"y{i}"], "gold": 1} for i in range(pool)]
    return Task(TaskSpec("t", "multiple_choice", **spec), items, fewshot)


def test_multiple_choice_prompt_with_shots():
    task = mc_task(prefix="Header.\n", example_delimiter="\n\n", continuation_delimiter=" ")
    p = render(task, 3, k=2, seed=7)
    shots = shots_for(task, 3, 2, 7)
    expected = "Header.\n" + "".join(f"{s['query']} {s['choices'][1]}\n\n" for s in shots) + "Q3:"
    assert p.contexts == [expected]
    assert p.continuations == [" a3", " b3"] and p.gold == 1 and p.choice_texts == ["a3", "b3"]


def test_shots_are_deterministic_distinct_and_from_the_pool_only():
    task = mc_task(n=50, pool=20)
    a, b = shots_for(task, 5, 10, 1), shots_for(task, 5, 10, 1)
    assert a == b and len({s["query"] for s in a}) == 10
    assert all(s in task.fewshot for s in a)
    assert shots_for(task, 6, 10, 1) != a  # another item, other shots
    assert shots_for(task, 5, 10, 2) != a  # another seed


def test_a_pool_made_of_the_other_items_never_contains_the_item():
    task = mc_task(n=3, pool=0)
    task.fewshot_from_items = True
    for i in range(3):
        assert task.items[i] not in shots_for(task, i, 2, 0)


def test_too_few_shots_is_a_clear_error():
    with pytest.raises(UserError, match="5 shots asked for, but its few-shot pool has 4 items"):
        shots_for(mc_task(pool=4), 0, 5, 0)


def test_other_formats():
    schema = Task(TaskSpec("s", "schema"), [{"context_options": ["A", "B"], "continuation": "end.",
                                             "gold": 1}])
    p = render(schema, 0, 0)
    assert p.contexts == ["A", "B"] and p.continuations == [" end."] and p.gold == 1
    lm = Task(TaskSpec("l", "language_modeling"), [{"context": "Once upon a", "continuation": "time"}])
    assert render(lm, 0, 0).continuations == [" time"]
    qa = Task(TaskSpec("q", "generative_qa", example_delimiter="\n"),
              [{"context": "Q: x?\nA:", "answers": ["y", "z"]}] * 2, fewshot_from_items=True)
    p = render(qa, 0, 1)
    assert p.contexts == ["Q: x?\nA: y\nQ: x?\nA:"] and p.answers == ["y", "z"]
