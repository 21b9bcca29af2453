"""Stage entry points of the study rules (one per study of the registry) and of the summary.

A study job builds the :class:`~llm_influence.studies.inputs.StudyInputs` of its rule, calls the
study module's ``run(inputs, cfg)`` with its settings (the shared keys of ``config["studies"]``
and its own block) and writes the returned metrics, labelled with the study, the models and their
sizes, to ``results/studies/<study>/metrics.json``; they also go to provenance. The rule's entry
``llm_influence.studies.stage:<study>`` resolves through :data:`STUDIES` (built from
:mod:`llm_influence.studies.registry`). Study modules import lazily: a job loads only its own.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from llm_influence.artifacts.studies import METRICS, read_metrics
from llm_influence.studies.registry import NAMES, SHARED, study
from llm_influence.utils.io import write_json, write_text
from llm_influence.workflow.context import StageContext


def settings(section: Mapping[str, Any], name: str) -> dict[str, Any]:
    """A study's settings: the shared keys of the ``studies`` section plus its own block."""
    shared = {k: v for k, v in section.items() if k not in NAMES}
    return {**shared, **section[name]}


def run_study(name: str, ctx: StageContext) -> dict[str, Any]:
    """Run one study of the shared rule and write its ``metrics.json``."""
    from llm_influence.studies.inputs import StudyInputs
    from llm_influence.studies.results import clean

    module = importlib.import_module(study(name).module)
    inputs = StudyInputs.from_context(ctx)
    metrics = module.run(inputs, settings(ctx.section("studies"), name))
    scored = inputs.scored_on()
    if scored and any(s["candidates"] != "all" for s in scored.values()):
        metrics["scored_on"] = scored  # the study saw only the TF-IDF candidates: say so
    metrics = clean(
        {"study": name, "models": inputs.models, "n_params": inputs.n_params, **metrics}
    )
    write_json(inputs.out / METRICS, metrics)
    return metrics


def _entry(name: str) -> Callable[[StageContext], dict[str, Any]]:
    def entry(ctx: StageContext) -> dict[str, Any]:
        return run_study(name, ctx)

    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = f"Stage entry of rule study, study {name!r} (results/studies/{name})."
    return entry


STUDIES: dict[str, Callable[[StageContext], dict[str, Any]]] = {n: _entry(n) for n in SHARED}


def __getattr__(name: str) -> Callable[[StageContext], dict[str, Any]]:
    """``llm_influence.studies.stage:<study>`` (the rule's entry) for every registered study."""
    try:
        return STUDIES[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def summary(ctx: StageContext) -> dict[str, Any]:
    """Inputs: ``studies`` (list of ``results/studies/{study}`` dirs; name = dir name) or one named
    input per study. Output ``summary``: ``results/summary.md`` (file)."""
    from llm_influence.studies.results import clean
    from llm_influence.studies.summary import build_summary, candidates_only, render_markdown

    raw = ctx.input.get("studies", [])
    dirs = {Path(d).name: Path(d) for d in ([raw] if isinstance(raw, (str, Path)) else raw)}
    dirs.update({name: Path(ctx.input[name]) for name in NAMES if name in ctx.input})
    metrics = {n: m for n, d in dirs.items() if (m := read_metrics(d)) is not None}
    models = [str(m) for m in ctx.config["models"]]
    report = ctx.section("report")
    rows = build_summary(metrics, models, report)
    write_text(Path(ctx.output["summary"]), render_markdown(rows, models, candidates_only(metrics)))
    return clean({"rows": int(len(rows)), "verdicts": rows["verdict"].value_counts().to_dict()})
