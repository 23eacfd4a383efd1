"""Task files: the four formats, a user's own files, and every malformed input named by file:line."""

import json

import pytest

from mixtune.errors import UserError
from mixtune.eval.tasks import TaskSpec, load_task, read_items

ITEMS = {
    "multiple_choice": {"query": "2 + 2 =", "choices": ["3", "4"], "gold": 1},
    "schema": {"context_options": ["The cat", "The dog"], "continuation": "barked.", "gold": 1},
    "language_modeling": {"context": "Once upon a", "continuation": "time"},
    "generative_qa": {"context": "Q: capital of France?\nA:", "answers": ["Paris"]},
}


def write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("fmt", sorted(ITEMS))
def test_each_format_is_read_and_recognised(tmp_path, fmt):
    f = write(tmp_path / "t.jsonl", [ITEMS[fmt], "", ITEMS[fmt]])  # a blank line is skipped
    found, items = read_items(f)
    assert found == fmt and items == [ITEMS[fmt]] * 2
    task = load_task(f)  # a user's bare file: its shots come from its other items
    assert task.spec.format == fmt and task.fewshot_from_items and task.name == "t"


def test_a_task_folder(tmp_path):
    spec = TaskSpec("mine", "multiple_choice", shots=2, random_baseline=0.5, n=1, fewshot_n=2)
    (tmp_path / "task.json").write_text(json.dumps(spec.to_json()))
    write(tmp_path / "test.jsonl", [ITEMS["multiple_choice"]])
    write(tmp_path / "fewshot.jsonl", [ITEMS["multiple_choice"]] * 2)
    task = load_task(tmp_path)
    assert task.spec == spec and len(task.fewshot) == 2 and not task.fewshot_from_items


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"query": "x", "choices": ["a"]', r"t.jsonl:2: malformed JSON"),
        ('["a", "b"]', r"t.jsonl:2: expected a JSON object"),
        ('{"text": "x"}', r"t.jsonl:2: keys \['text'\] match no task format"),
        ('{"query": "x", "choices": ["a", "b"], "gold": 2}', r"t.jsonl:2: gold 2 is not the index"),
        ('{"query": "x", "choices": ["a", "b"], "gold": true}', r"gold True is not the index"),
        ('{"query": "x", "choices": [], "gold": 0}', r"'choices' must be a non-empty list"),
        ('{"query": 3, "choices": ["a"], "gold": 0}', r"'query' must be a string"),
        ('{"context": "x", "continuation": "y"}', r"t.jsonl:2: a multiple_choice item needs 'query'"),
    ],
)
def test_malformed_items_name_the_line(tmp_path, line, message):
    good = json.dumps(ITEMS["multiple_choice"])
    f = tmp_path / "t.jsonl"
    f.write_text(good + "\n" + line + "\n")
    if "match no task format" in message:  # the first line decides the format: put it first
        f.write_text(good.replace('"query"', '"text"') + "\n" + line + "\n")
        message = r"t.jsonl:1: keys"
    with pytest.raises(UserError, match=message):
        read_items(f)


def test_answers_must_be_a_list(tmp_path):
    f = write(tmp_path / "qa.jsonl", [ITEMS["generative_qa"], {"context": "x", "answers": "Paris"}])
    with pytest.raises(UserError, match=r"qa.jsonl:2: 'answers' must be a non-empty list"):
        read_items(f)


def test_line_separators_inside_strings_are_kept(tmp_path):
    item = {"context": "a\u2028b", "continuation": "c"}
    f = write(tmp_path / "t.jsonl", [json.dumps(item, ensure_ascii=False)])
    assert read_items(f)[1] == [item]


def test_empty_or_unreadable(tmp_path):
    with pytest.raises(UserError, match="no items"):
        read_items(write(tmp_path / "e.jsonl", [""]))
    (tmp_path / "task.json").write_text('{"name": "x", "format": "essay"}')
    write(tmp_path / "test.jsonl", [ITEMS["multiple_choice"]])
    with pytest.raises(UserError, match="format 'essay'; use one of multiple_choice"):
        load_task(tmp_path)
