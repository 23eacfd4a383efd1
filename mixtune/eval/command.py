"""`mixtune eval MODEL`: per-domain log-ppl and downstream tasks of any model, as a table and JSON.

MODEL is a run folder (or its final/), any Hugging Face causal-LM folder, or a GGUF file
(transformers dequantises it; needs the `gguf` package: pip install 'mixtune[gguf]'). A run
folder is always scored on its dataset's domains too, and its results go to RUN/eval.json (the
downstream ones under "downstream"), where the report finds them.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from mixtune import distributed
from mixtune.errors import UserError
from mixtune.eval.config import EvalOptions
from mixtune.eval.suites import DOMAINS, TaskRef, parse_tasks
from mixtune.io import write_json_atomic
from mixtune.provenance import eval_metrics, model_record, write_eval_record
from mixtune.records import DownstreamResult, EvalFile
from mixtune.tables import aligned


def run_eval(model_path: str, opts: EvalOptions) -> dict:
    refs = parse_tasks(opts.tasks or "")
    dist = distributed.setup(opts.device)
    model, tokenizer, run_dir = load_for_eval(Path(model_path))
    model.to(dist.device)
    from mixtune.model.loss import autocast_dtype_for

    amp = autocast_dtype_for(opts.precision, dist.device)
    # eval.json keeps its layout (the per-domain result at the top, as training writes it);
    # downstream results are one more key.
    out: dict = {}
    data = opts.data or (dataset_of(run_dir) if run_dir else None)
    if run_dir is not None or any(r.kind == DOMAINS for r in refs):
        if data is None:
            raise UserError("--tasks domains: give the dataset with --data DATASET.")
        out.update(_domains(model, run_dir, data, opts, dist, amp))
    out["model"] = str(Path(model_path).resolve())
    downstream = [r for r in refs if r.kind != DOMAINS]
    if downstream:
        result = _downstream(model, tokenizer, downstream, data, opts, dist, amp)
        out["downstream"] = result.to_json()
    if dist.is_main:
        target = opts.out or (run_dir / "eval.json" if run_dir is not None else None)
        if target is not None:
            write_json_atomic(Path(target), out)
        model_rec = model_record(run_dir) if run_dir is not None else None
        if model_rec is not None:  # a new record: an evaluation never rewrites an earlier one
            write_eval_record(run_dir, model_rec, tasks=opts.tasks, limit=opts.limit,
                              **eval_metrics(EvalFile.from_json(out).result, out.get("downstream")))
        print(format_results(out))
    # Every rank leaves together: rank 1 tearing its process group down while rank 0 was still
    # writing sometimes died with SIGABRT at exit ("terminate called without an active exception").
    distributed.barrier()
    return out


def _domains(model, run_dir, data, opts, dist, amp) -> dict:
    from mixtune.data.store import open_dataset
    from mixtune.eval.perplexity import evaluate
    from mixtune.model.build import same_tokenizer

    ds = open_dataset(data)
    final = run_dir / "final" if run_dir is not None else None
    if final is not None and not same_tokenizer(final, ds):
        raise UserError(
            f"{final} was trained with another tokenizer than {data}; evaluate it on its own dataset."
        )
    seq_len = ds.seq_len
    if final is not None and (final / "mixtune.json").is_file():
        seq_len = int(json.loads((final / "mixtune.json").read_text())["seq_len"])
    result = evaluate(model, ds, seq_len=seq_len, max_tokens_per_domain=opts.max_tokens_per_domain,
                      batch_size=opts.batch_size, device=dist.device, autocast_dtype=amp,
                      rank=dist.rank, world_size=dist.world_size)
    return EvalFile(result, dataset=str(Path(data).resolve()),
                    max_tokens_per_domain=opts.max_tokens_per_domain).to_json()


def _downstream(model, tokenizer, spec: list[TaskRef], data, opts, dist, amp) -> DownstreamResult:
    roots = [Path(data) / "tasks"] if data else []
    if opts.harness == "lm-eval":
        from mixtune.eval.harness import evaluate_with_lm_eval

        return evaluate_with_lm_eval(model, tokenizer, spec, roots, limit=opts.limit,
                                     shots=opts.shots)
    from mixtune.eval.downstream import Runtime, evaluate_tasks

    rt = Runtime(dist.device, amp, dist.rank, dist.world_size, opts.batch_tokens,
                 progress_every=opts.progress_every)
    return evaluate_tasks(model, tokenizer, spec, rt, limit=opts.limit, shots=opts.shots,
                          roots=roots)


def load_for_eval(path: Path):
    """(model, tokenizer, run folder or None) of a run folder, an HF folder or a GGUF file."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mixtune.model.build import final_dir

    if path.suffix == ".gguf":
        if not path.is_file():
            raise UserError(f"{path}: no such GGUF file.")
        import importlib.util

        if importlib.util.find_spec("gguf") is None:
            raise UserError(f"{path}: reading GGUF needs the gguf package (pip install 'mixtune[gguf]').")
        kw = {"gguf_file": path.name}
        with _no_gguf_bar():
            model = AutoModelForCausalLM.from_pretrained(str(path.parent), **kw)
        return model, AutoTokenizer.from_pretrained(str(path.parent), **kw), None
    final = final_dir(path)
    if final is None:
        raise UserError(
            f"{path}: no model there (expected a run folder with final/, a Hugging Face model "
            "folder with config.json, or a .gguf file)."
        )
    run_dir = final.parent if (final.parent / "config.yaml").is_file() else None
    model = AutoModelForCausalLM.from_pretrained(str(final))
    return model, AutoTokenizer.from_pretrained(str(final)), run_dir


@contextmanager
def _no_gguf_bar():
    """Without transformers' bar over the GGUF tensors (hundreds of updates, nothing to act on).
    It is tqdm imported into transformers' GGUF module, out of reach of the switches of
    transformers and the Hub, and of TQDM_DISABLE once tqdm is imported: it is swapped there."""
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    bar = getattr(gguf_utils, "tqdm", None)
    if bar is None:  # another transformers version: nothing to silence here
        yield
        return
    gguf_utils.tqdm = partial(bar, disable=True)
    try:
        yield
    finally:
        gguf_utils.tqdm = bar


def dataset_of(run_dir: Path) -> str:
    """The dataset a run was trained on. config.yaml keeps `data` as given, relative to the
    folder training ran in; final/mixtune.json records it resolved, so the run can be evaluated
    from any folder."""
    import yaml

    cfg_file = run_dir / "config.yaml"
    data = (yaml.safe_load(cfg_file.read_text()) or {}).get("data")
    if not data:
        raise UserError(f"{cfg_file}: names no dataset; pass --data DATASET.")
    if Path(data).is_absolute():
        return data
    info = run_dir / "final" / "mixtune.json"
    recorded = json.loads(info.read_text()).get("dataset") if info.is_file() else None
    if recorded and Path(recorded).is_dir():
        return recorded
    if Path(data).is_dir():  # no record of it (or it moved): as given, from here
        return data
    where = f" (recorded as {recorded} in {info})" if recorded else ""
    raise UserError(f"{cfg_file}: its dataset {data}{where} is not found from {Path.cwd()}; "
                    "pass --data DATASET.")


def format_results(out: dict) -> str:
    from mixtune.eval.perplexity import format_table
    from mixtune.records import EvalResult

    parts = []
    if "log_ppl" in out:
        parts.append(format_table(EvalResult.from_json(out)))
    if "downstream" in out:
        parts.append(format_downstream(DownstreamResult.from_json(out["downstream"])))
    return "\n\n".join(parts)


def format_downstream(result: DownstreamResult) -> str:
    head = ("task", "shots", "n", "acc", "acc_norm", "acc/token", "centred", "bpb", "gold p")
    rows = [head]
    for t in result.tasks.values():
        rows.append((t.name, str(t.shots), str(t.n), *(_num(v) for v in (
            t.acc, t.acc_norm, t.acc_per_token, t.acc_centered, t.bpb, t.gold_prob))))
    lines = aligned(rows)
    for agg in result.aggregates.values():
        missing = f" (missing: {', '.join(agg['missing'])})" if agg["missing"] else ""
        lines.append(f"{agg['name']}: {_num(agg['value'])}{missing}")
    if result.mean_bpb is not None:
        lines.append(f"mean gold bpb: {result.mean_bpb:.4f}")
    return "\n".join(lines)


def _num(v) -> str:
    return "—" if v is None else f"{v:.4f}"
