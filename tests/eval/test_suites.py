"""Suites: entries, centred accuracy, CORE with missing tasks, and where tasks are looked up."""

import json

import pytest

from mixtune.errors import UserError
from mixtune.eval import suites
from mixtune.eval.tasks import TaskSpec


def test_core_is_dclms_22_and_extended_its_53():
    assert len(suites.CORE) == 22 and len(suites.EXTENDED) == 53
    assert set(suites.CORE) <= set(suites.EXTENDED)
    zero, ten = suites.ENTRIES["hellaswag_zeroshot"], suites.ENTRIES["hellaswag"]
    assert (zero.task, zero.shots, ten.task, ten.shots) == ("hellaswag", 0, "hellaswag", 10)
    assert suites.ENTRIES["boolq"].baseline == pytest.approx(0.62)  # DCLM v2, not 1/2


def test_entries_and_shots_override():
    names = [e.name for e in suites.entries("arc_easy, core")]
    assert names[0] == "arc_easy" and len(names) == 22  # deduplicated
    assert {e.shots for e in suites.entries("core", shots=3)} == {3}
    mine = suites.entries("my_task")[0]
    assert (mine.task, mine.shots, mine.kind) == ("my_task", -1, "")  # not a DCLM entry


def test_centred_aggregate_counts_what_is_present():
    agg = suites.aggregate("core", {"arc_easy": 0.4, "piqa": 0.2, "not_core": 1.0})
    assert agg.name == "CORE (2/22)" and agg.value == pytest.approx(0.3)
    assert agg.present == 2 and len(agg.missing) == 20 and "winograd" in agg.missing
    empty = suites.aggregate("core", {})
    assert empty.value is None and empty.name == "CORE (0/22)"


def install(root, name, fmt="multiple_choice"):
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "task.json").write_text(json.dumps(TaskSpec(name, fmt).to_json()))
    (folder / "test.jsonl").write_text('{"query": "q", "choices": ["a", "b"], "gold": 0}\n')
    return folder


def test_locate_order_and_missing_tasks(tmp_path, monkeypatch, caplog):
    cache, own = tmp_path / "cache", tmp_path / "dataset_tasks"
    monkeypatch.setenv("MIXTUNE_TASKS", str(cache))
    install(cache, "arc_easy")
    install(cache, "piqa")
    install(own, "piqa")
    found = dict((e.name, p) for e, p in suites.locate("arc_easy,piqa", None, [own]))
    assert found == {"arc_easy": cache / "arc_easy", "piqa": own / "piqa"}  # the dataset's first
    # A suite goes on with what is installed and says what is not.
    assert {e.name for e, _ in suites.locate("core", None, [])} == {"arc_easy", "piqa"}
    assert "tasks not installed, left out" in caplog.text and "mixtune tasks download" in caplog.text
    # A task named but not installed stops, with the command that installs it.
    with pytest.raises(UserError, match=r"not installed: hellaswag; install with: mixtune tasks "
                                        r"download --tasks hellaswag"):
        suites.locate("arc_easy,hellaswag", None, [])
    monkeypatch.setenv("MIXTUNE_TASKS", str(tmp_path / "empty"))
    with pytest.raises(UserError, match="not installed"):
        suites.locate("core", None, [])  # nothing at all installed


def test_dataset_keyword_and_user_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("MIXTUNE_TASKS", str(tmp_path / "cache"))
    own = tmp_path / "tasks"
    install(own, "continue_a")
    install(own, "complete_a", "multiple_choice")
    mine = install(tmp_path / "elsewhere", "mine")
    names = [e.name for e, _ in suites.locate(f"dataset,{mine}", None, [own])]
    assert names == ["complete_a", "continue_a", str(mine)]
    with pytest.raises(UserError, match="this dataset has no tasks of its own"):
        suites.locate("dataset", None, [tmp_path / "nothing"])


def test_a_tasks_value_is_parsed_once_into_kinds():
    refs = suites.parse_tasks(" core,arc_easy,, mmlu ,dataset,domains,mine/t.jsonl,t.jsonl,core")
    assert [(r.kind, r.name) for r in refs] == [
        ("suite", "core"), ("entry", "arc_easy"), ("task", "mmlu"), ("dataset", "dataset"),
        ("domains", "domains"), ("path", "mine/t.jsonl"), ("path", "t.jsonl")]  # each once
    assert suites.parse_tasks(["core", " arc_easy"]) == refs[:2]  # a YAML list
    assert suites.parse_tasks("") == [] == suites.parse_tasks(" , ")
    with pytest.raises(UserError, match=r"tasks: 3 is not a task name"):
        suites.parse_tasks(["core", 3])


def test_domains_is_no_downstream_task_and_a_missing_path_is_named(tmp_path):
    assert [e.name for e in suites.entries("domains,copa")] == ["copa"]
    with pytest.raises(UserError, match="names no task"):
        suites.entries("domains")
    with pytest.raises(UserError, match=f"--tasks {tmp_path}/no.jsonl: no such task file"):
        suites.locate(f"{tmp_path}/no.jsonl", None, [])


def test_the_config_check_of_a_tasks_value():
    assert suites.tasks_problem("core, arc_easy") is None
    assert suites.tasks_problem(["core", "arc_easy"]) is None
    assert suites.tasks_problem(" , ") == "names no task" == suites.tasks_problem([])
    assert "as a list of strings" in suites.tasks_problem(["core", 3])
    assert "as a list of strings" in suites.tasks_problem(3)
