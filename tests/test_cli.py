"""The command line as a user meets it: help for every flag, errors before any work, pipes, logs."""

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mixtune.cli import build_parser, main

REPO = Path(__file__).parents[1]


def subcommands():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


@pytest.mark.parametrize("name", sorted(subcommands()))
def test_every_flag_has_help_and_shows_its_default(name):
    for action in subcommands()[name]._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"mixtune {name} {action.option_strings or action.dest}: no help"
        if action.option_strings and not action.required:
            assert "(default: " in action.help, f"mixtune {name} {action.option_strings}: no default"
    assert "usage:" in subcommands()[name].format_help()  # a stray % in a docstring breaks it


def test_train_and_doremi_expose_every_setting():
    flags = {a.option_strings[0] for a in subcommands()["doremi"]._actions if a.option_strings}
    for f in ("--reference", "--proxy-sampling", "--eta", "--smoothing", "--loss-normalization",
              "--lr", "--final-lr-ratio", "--warmup-fraction", "--beta1", "--beta2",
              "--weight-decay", "--grad-clip", "--eval-every", "--eval-max-tokens-per-domain",
              "--eval-batch-size", "--checkpoint-every", "--keep-checkpoints", "--progress-every",
              "--peak-tflops", "--precision", "--seed", "--device", "--report-to"):
        assert f in flags, f
    assert "--weights" in {a.option_strings[0] for a in subcommands()["train"]._actions
                           if a.option_strings}


def test_run_config_reference_is_committed_and_current():
    from mixtune.docs import run_config_reference

    assert (REPO / "docs" / "run-config.md").read_text() == run_config_reference(), (
        "docs/run-config.md is stale: python -m mixtune config > docs/run-config.md"
    )


def test_the_config_reference_has_every_section_it_points_to():
    """A key whose default is "(see below)" has its section below; so does every section a run
    YAML can hold (data.process and eval were once missing)."""
    import re

    from mixtune.docs import run_config_reference

    text = run_config_reference()
    # "## proxy, main" documents both; "## doremi (the options of ...)" documents doremi.
    sections = {name for title in re.findall(r"^## ([^(\n]+)", text, flags=re.M)
                for name in title.strip().split(", ")}
    pointed = re.findall(r"^\| `([\w<>]+)` \| [^|]+ \| \(see below\) \|", text, flags=re.M)
    for key in pointed:
        assert any(s == key or s.startswith(key + ".") or s.endswith("." + key)
                   for s in sections) or key == "<method>", f"{key}: (see below), but no section"
    assert {"data.process", "data.prepare", "eval", "train", "doremi"} <= sections


def test_a_mistyped_flag_gets_a_did_you_mean(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--data", "d", "--out", "o", "--weigths", "natural"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "mixtune train: error: unrecognized arguments: --weigths natural (--weigths: did " \
           "you mean --weights?)" in err
    assert len(err.strip().splitlines()) == 1  # the hint alone, not the usage block


def test_list_operations_tells_about_domains(capsys):
    pytest.importorskip("datatrove")
    assert main(["process", "--list-operations"]) == 0
    assert "domains: [a, b], to apply to those domains only" in capsys.readouterr().out


def test_a_typo_in_a_run_config_fails_before_any_stage(tmp_path):
    cfg = {"output": str(tmp_path / "out"), "data": {"synthetic": {}},
           "doremi": {"etta": 2}}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    proc = subprocess.run([sys.executable, "-m", "mixtune", "run", str(tmp_path / "run.yaml")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "doremi: unknown key 'etta' (did you mean 'eta'?)" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()  # nothing ran


def test_a_closed_pipe_is_not_a_traceback():
    proc = subprocess.run(f"{sys.executable} -m mixtune scales | head -n 1", shell=True,
                          capture_output=True, text=True)
    assert proc.stdout.startswith("scale")
    assert proc.stderr == ""


def test_interrupt_message_fits_the_command(monkeypatch, capsys):
    import mixtune.data.prepare

    def interrupted(opts):
        raise KeyboardInterrupt

    monkeypatch.setattr(mixtune.data.prepare, "prepare", interrupted)
    assert main(["prepare", "somewhere", "--out", "x"]) == 130
    err = capsys.readouterr().err
    assert "checkpoint" not in err and "nothing was published to --out" in err


@pytest.mark.slow
def test_progress_lines_without_a_terminal(synthetic_dataset, tmp_path):
    """A log file or a batch job has no TTY: it gets a progress line every N seconds."""
    proc = subprocess.run(
        [sys.executable, "-m", "mixtune", "train", "--data", str(synthetic_dataset),
         "--out", str(tmp_path / "run"), "--steps", "6", "--batch-size", "8",
         "--eval-max-tokens-per-domain", "64", "--progress-every", "0.000001"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [s for s in proc.stderr.splitlines() if s.startswith("mixtune: train: step ")]
    assert lines and "/6 (" in lines[-1] and "tokens/s" in lines[-1] and "loss" in lines[-1]
    assert "Writing model shards" not in proc.stderr  # no progress bars of the libraries either


def test_a_command_that_ends_well_leaves_its_process_group(tmp_path, capsys):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0,
                            world_size=1)
    try:
        assert main(["scales"]) == 0
        assert "tiny" in capsys.readouterr().out
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


@pytest.mark.parametrize("flags, message", [
    (["--mfu", "0"], "--mfu 0: must be a fraction in (0, 1]"),
    (["--mfu", "40"], "--mfu 40: must be a fraction in (0, 1]: 0.4 for 40%"),
    (["--chinchilla-multiplier", "-1"], "--chinchilla-multiplier -1: must be positive"),
    (["--vocab-size", "0"], "--vocab-size 0: must be at least 1"),
])
def test_scales_refuses_values_out_of_range(flags, message, capsys):
    assert main(["scales", *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
