"""Run one Snakemake job: ``workflow/scripts/stage.py`` calls :func:`run_rule`.

The stage function named in ``params.entry`` (``"package.module:function"``) receives a
:class:`StageContext` whose outputs point at empty temporary siblings of the real outputs. When it
returns, a ``provenance.json`` goes into every output directory and each temporary is renamed into
place. If it raises (or the job is killed), no final output appears; leftovers of a killed job are
hidden ``.<name>.tmp-*`` siblings, removed when the job runs again.
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import signal
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from llm_influence.utils.io import read_json, write_json
from llm_influence.workflow.context import StageContext
from llm_influence.workflow.headline import DETAIL_FILE, HEADLINE_FILE, headline, spec_for
from llm_influence.workflow.provenance import PROVENANCE_FILE, build_record

TMP_MARK = ".tmp-"


def load_entry(spec: str) -> Callable[[StageContext], Mapping[str, Any] | None]:
    """Import ``"package.module:function"``."""
    module_name, sep, func_name = spec.partition(":")
    if not sep or not module_name or not func_name:
        raise ValueError(f"stage entry must look like 'package.module:function', got {spec!r}")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, func_name)
    except AttributeError:
        raise AttributeError(f"stage entry {spec!r}: {module_name} has no {func_name!r}") from None


def temp_sibling(final: Path) -> Path:
    return final.with_name(f".{final.name}{TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")


def remove_stale_temporaries(final: Path) -> None:
    """Delete temporaries that a killed run of this output left behind."""
    if not final.parent.is_dir():
        return
    for stale in final.parent.glob(f".{final.name}{TMP_MARK}*"):
        _remove(stale)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _replace(tmp: Path, final: Path) -> None:
    """Move ``tmp`` onto ``final`` (each step a rename; an existing output is swapped out first)."""
    if final.exists() or final.is_symlink():
        old = final.with_name(f".{final.name}{TMP_MARK}old-{uuid.uuid4().hex[:8]}")
        os.replace(final, old)
        os.replace(tmp, final)
        _remove(old)
    else:
        os.replace(tmp, final)


def setup_logging(log_path: str | os.PathLike[str] | None) -> logging.Logger:
    """Log to the rule's log file and to stderr; returns the ``llm_influence`` logger."""
    logger = logging.getLogger("llm_influence")
    logger.setLevel(logging.INFO)
    logger.handlers.clear()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w", encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(fmt)
        logger.addHandler(handler)
    logger.propagate = False
    return logger


def _named(namedlist: Any) -> dict[str, Any]:
    return {name: value for name, value in namedlist.items()}


# Outputs whose name ends in one of these are files; everything else is a directory.
FILE_SUFFIXES = frozenset(
    [
        ".md",
        ".txt",
        ".json",
        ".yaml",
        ".yml",
        ".csv",
        ".tsv",
        ".parquet",
        ".arrow",
        ".safetensors",
        ".pt",
        ".png",
        ".pdf",
        ".svg",
        ".html",
    ]
)


def _dir_outputs(smk: Any, outputs: Mapping[str, str]) -> set[str]:
    """Which outputs are directories.

    Scripts receive plain strings, without Snakemake's ``directory()`` flag, so: outputs named in
    ``params.files`` are files, and otherwise a name ending in a data-file suffix
    (``results/summary.md``) is a file and anything else (``data/models/pythia-1.4b``) a directory.
    """
    files = set(getattr(smk.params, "files", None) or [])
    unknown = files - set(outputs)
    if unknown:
        raise ValueError(f"rule {smk.rule}: params.files names no output: {sorted(unknown)}")
    return {
        name
        for name, path in outputs.items()
        if name not in files and Path(path).suffix.lower() not in FILE_SUFFIXES
    }


def _make_temporaries(
    finals: Mapping[str, Path], dir_outputs: set[str], temps: dict[str, Path]
) -> None:
    """A fresh hidden sibling per output (an empty directory for a directory output), recorded
    in ``temps`` one by one so that the caller removes every one made, even after an error."""
    for name, final in finals.items():
        remove_stale_temporaries(final)
        final.parent.mkdir(parents=True, exist_ok=True)
        temps[name] = temp_sibling(final)
        if name in dir_outputs:
            temps[name].mkdir()


def _seed(ctx: StageContext) -> bool:
    """Seed before the stage runs; whether torch was loaded (a stage whose module does not
    import torch -- corpus, studies, summary -- runs without it)."""
    from llm_influence.utils.seeding import seed_everything, seed_python_numpy, torch_loaded

    uses_torch = torch_loaded()
    if uses_torch:
        import torch

        torch.set_num_threads(max(1, int(ctx.threads)))
        seed_everything(ctx.seed)
    else:
        seed_python_numpy(ctx.seed)
    return uses_torch


def _write_headlines(
    dirs: list[Path], spec: Mapping[str, str], rule: str, entry: Any, logger: logging.Logger
) -> None:
    """``headline.json`` in each directory, chosen from its ``metrics.json`` by ``spec``."""
    for out in dirs:
        detail = out / DETAIL_FILE
        if not detail.is_file():
            raise FileNotFoundError(
                f"rule {rule}: {entry} wrote no {DETAIL_FILE}, which {HEADLINE_FILE} is made from"
            )
        write_json(out / HEADLINE_FILE, headline(read_json(detail), spec, logger))


LATE_TORCH = (
    "%s imported torch inside the stage, so torch was not seeded before it ran; "
    "import torch at the top of its module to make its torch randomness reproducible"
)


def _publish(
    finals: Mapping[str, Path], temps: Mapping[str, Path], dir_outputs: set[str], record, entry
) -> None:
    """Provenance into each directory output, then every temporary renamed to its final name."""
    for name in dir_outputs:
        write_json(temps[name] / PROVENANCE_FILE, record)
    for name, final in finals.items():
        if not temps[name].exists():
            raise FileNotFoundError(f"stage {entry} did not write its output {name!r}")
        _replace(temps[name], final)


def _call(fn: Callable, ctx: StageContext, entry: Any) -> tuple[Any, float, float, float]:
    """Seed, run the stage function: (its return value, start and end time, CPU seconds).

    CPU seconds (all threads of this process) stay meaningful on a loaded or shared machine,
    where wall time measures the neighbours as much as the stage."""
    from llm_influence.utils.seeding import torch_loaded

    uses_torch = _seed(ctx)
    ctx.logger.info("rule %s %s: running %s", ctx.rule, ctx.wildcards, entry)
    start, cpu_start = time.time(), time.process_time()
    metrics = fn(ctx)
    end, cpu = time.time(), time.process_time() - cpu_start
    if torch_loaded() and not uses_torch:
        ctx.logger.warning(LATE_TORCH, entry)
    return metrics, start, end, cpu


def run_stage(
    entry: str | Callable[[StageContext], Mapping[str, Any] | None],
    *,
    rule: str,
    config: Mapping[str, Any],
    inputs: Mapping[str, Any],
    outputs: Mapping[str, str | os.PathLike[str]],
    dir_outputs: set[str] | None = None,
    wildcards: Mapping[str, str] | None = None,
    threads: int = 1,
    params_config: Mapping[str, Any] | None = None,
    code_files: list[str] | None = None,
    logger: logging.Logger | None = None,
    headline_spec: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Run a stage function with temporary outputs, write provenance, rename into place.

    ``dir_outputs``: names of directory outputs (default: all). ``headline_spec``: write
    ``headline.json`` from the stage's ``metrics.json`` into each directory output
    (:mod:`llm_influence.workflow.headline`). Returns the provenance record.
    """
    logger = logger or logging.getLogger("llm_influence")
    dir_outputs = set(outputs) if dir_outputs is None else set(dir_outputs)
    fn = load_entry(entry) if isinstance(entry, str) else entry
    finals = {name: Path(path) for name, path in outputs.items()}
    temps: dict[str, Path] = {}
    try:
        _make_temporaries(finals, dir_outputs, temps)
        ctx = StageContext(
            rule=rule,
            config=dict(config),
            input={
                k: [Path(p) for p in v] if isinstance(v, list) else Path(v)
                for k, v in inputs.items()
            },  # fmt: skip
            output=dict(temps),
            wildcards=dict(wildcards or {}),
            threads=int(threads),
            logger=logger,
        )
        metrics, start, end, cpu = _call(fn, ctx, entry)
        if headline_spec is not None:
            _write_headlines([temps[n] for n in dir_outputs], headline_spec, rule, entry, logger)
        record = build_record(
            rule=rule, wildcards=ctx.wildcards,
            config=params_config if params_config is not None else config,
            code_files=code_files or [], seed=ctx.seed, device=ctx.device, threads=ctx.threads,
            start=start, end=end, cpu_seconds=cpu, metrics=metrics,
        )  # fmt: skip
        _publish(finals, temps, dir_outputs, record, entry)
        logger.info("rule %s done in %.1f s", rule, end - start)
        return record
    finally:
        for tmp in temps.values():
            _remove(tmp)


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _headline_spec(smk: Any) -> Mapping[str, str] | None:
    """The job's headline spec when its rule declares ``headline.json`` as a DVC metric: its own
    ``params.headline``, else the entry of ``llm_influence.workflow.headline.HEADLINES``."""
    if HEADLINE_FILE not in list(getattr(smk.params, "metrics", None) or []):
        return None
    own = getattr(smk.params, "headline", None)
    return dict(own) if own else spec_for(smk.rule, _named(smk.wildcards))


def run_rule(smk: Any) -> dict[str, Any]:
    """Entry of ``workflow/scripts/stage.py``: run the job described by the ``snakemake`` object."""
    logger = setup_logging(smk.log[0] if len(smk.log) else None)
    # SIGTERM (Snakemake shutting down, a cluster time limit) unwinds like an exception, so the
    # temporaries are removed; SIGKILL leaves them for the next run of the job to clear.
    signal.signal(signal.SIGTERM, _terminate)
    try:
        inputs = _named(smk.input)
        outputs = _named(smk.output)
        if len(outputs) != len(smk.output):
            raise ValueError(f"rule {smk.rule}: every output must be named (name=directory(...))")
        return run_stage(
            smk.params.entry,
            rule=smk.rule,
            config=smk.config,
            inputs={k: v for k, v in inputs.items() if k != "code"},
            outputs=outputs,
            dir_outputs=_dir_outputs(smk, outputs),
            wildcards=_named(smk.wildcards),
            threads=smk.threads,
            params_config=getattr(smk.params, "config", None),
            code_files=[str(p) for p in inputs.get("code", [])],
            logger=logger,
            headline_spec=_headline_spec(smk),
        )
    except BaseException:
        logger.exception("rule %s failed", smk.rule)
        raise
