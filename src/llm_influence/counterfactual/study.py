"""Counterfactual study (rule ``counterfactual``): do the influence scores predict retraining?

``run(inputs, cfg) -> metrics`` reads the retrainings of ``results/counterfactual/{model}/``
(:mod:`llm_influence.artifacts.counterfactual`) and *every* estimator of the model's score table
(:func:`llm_influence.attribution.estimators.estimator_tables`, so an estimator added to the table
appears here without a change) plus the TF-IDF (BM25) baseline, and writes into ``inputs.out``:

* ``lds.parquet`` (model, method, query, kind, lds) and ``lds_{model}.png``: the linear
  datamodeling score per method, mean over queries with a bootstrap 95 % interval (queries and
  subsets resampled together), overall and per query kind;
* ``scatter_{model}.png``: predicted Σ_{i∈S_j} score vs retrained log p for the best and the worst
  query of the table's own method;
* ``leaveout.parquet`` (model, method, query, logp_full, logp, delta, n_removed) and
  ``leaveout_{model}.png``: mean change of log p(completion) over the fact queries when each
  method's top documents (or a random set of the same size) are removed.

The maths is in :mod:`llm_influence.counterfactual.lds`; the figures and the summary's two
validity checks (``CLAIMS``) in :mod:`llm_influence.studies.counterfactual`; this module assembles.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llm_influence.artifacts.counterfactual import (
    RetrainDirs,
    group_runs,
    read_measurements,
    read_run_documents,
    read_run_metrics,
)
from llm_influence.artifacts.queries import read_queries
from llm_influence.counterfactual.lds import (
    bootstrap_lds,
    bootstrap_mean,
    predicted_sums,
    spearman_rows,
)
from llm_influence.counterfactual.subsets import subset_masks
from llm_influence.studies.data import query_kind
from llm_influence.utils.io import write_json, write_parquet
from llm_influence.workflow.context import StageContext

STUDY = "counterfactual"
BASELINE = "graddot"  # the estimator the table's own method is compared with
FIGURES = ("lds", "scatter", "leaveout")
SKIP_FIGURE = "counterfactual.png"


@dataclass
class CounterfactualInputs:
    """What the study reads (paths) and where it writes."""

    models: list[str]  # counterfactual.models, in config order
    tables: dict[str, Path]  # model -> results/scores/{model}/table
    runs: dict[str, RetrainDirs]  # model -> its retraining dirs
    queries: Path | None  # data/queries
    tfidf: Path | None  # results/tfidf
    out: Path
    seed: int = 0

    @classmethod
    def from_paths(cls, models: Sequence[str], tables: Sequence[str | Path],
                   runs: Sequence[str | Path], queries: str | Path | None,
                   tfidf: str | Path | None, out: str | Path, seed: int = 0) -> CounterfactualInputs:  # fmt: skip
        """``tables`` in the order of ``models``; ``runs`` any order (grouped by their path)."""
        models = [str(m) for m in models]
        if len(tables) != len(models):
            raise ValueError(f"{len(tables)} score tables for counterfactual.models {models}")
        grouped = group_runs(runs)
        unknown = sorted(set(grouped) - set(models))
        if unknown:
            raise ValueError(f"retrainings of {unknown}, which are not in counterfactual.models")
        return cls(models=models, tables={m: Path(t) for m, t in zip(models, tables)},
                   runs={m: grouped.get(m, RetrainDirs()) for m in models},
                   queries=Path(queries) if queries else None, tfidf=Path(tfidf) if tfidf else None,
                   out=Path(out), seed=int(seed))  # fmt: skip


@dataclass
class ModelResult:
    metrics: dict[str, Any]
    lds: pd.DataFrame  # per query and method
    leaveout: pd.DataFrame
    predicted: dict[str, np.ndarray] = field(default_factory=dict)  # method -> [Q, M]
    actual: np.ndarray | None = None  # [Q, M]
    queries: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------- computation


def actual_logp(
    dirs: Sequence[Path], queries: Sequence[str]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """[Q, M] retrained log p (mean over the retrain seeds) and the kept doc ids of each subset."""
    cols, kept = [], []
    for d in dirs:
        m = read_measurements(d).groupby("query")["logp"].mean()
        missing = sorted(set(queries) - set(m.index))
        if missing:
            raise ValueError(f"{d}: measurements lack queries {missing[:5]}")
        cols.append(m.reindex(list(queries)).to_numpy(np.float64))
        kept.append(read_run_documents(d))
    return np.stack(cols, axis=1), kept


def lds_for_model(scores: Mapping[str, np.ndarray], doc_id: np.ndarray, queries: list[str],
                  kinds: list[str], dirs: Sequence[Path], n_bootstrap: int,
                  seed: int) -> tuple[dict[str, Any], pd.DataFrame, dict[str, np.ndarray], np.ndarray]:  # fmt: skip
    """LDS metrics, the per-query table, predictions [Q, M] per method and actual [Q, M]."""
    if len(dirs) < 2:
        raise ValueError(f"the LDS needs at least 2 subset retrainings, got {len(dirs)}")
    actual, kept = actual_logp(dirs, queries)
    masks = subset_masks(doc_id, kept)
    predicted = {m: predicted_sums(s, masks) for m, s in scores.items()}
    overall = bootstrap_lds(predicted, actual, n_bootstrap, seed)
    per_query = pd.concat(
        [pd.DataFrame({"method": m, "query": queries, "kind": kinds,
                       "lds": spearman_rows(p, actual)}) for m, p in predicted.items()],
        ignore_index=True,
    )  # fmt: skip
    by_kind: dict[str, dict[str, Any]] = {}
    for kind in dict.fromkeys(kinds):
        rows = [i for i, k in enumerate(kinds) if k == kind]
        sub = bootstrap_lds({m: p[rows] for m, p in predicted.items()}, actual[rows],
                            n_bootstrap, seed)  # fmt: skip
        by_kind[kind] = {m: sub[m] for m in predicted}
    losses = [x for d in dirs for x in read_run_metrics(d)["heldout_loss"]]
    metrics = {
        "n_subsets": int(actual.shape[1]),
        "n_queries": int(actual.shape[0]),
        "subset_heldout_loss": [float(x) for x in losses],
        "lds": {m: overall[m] for m in predicted},
        "lds_mean": {m: overall[m]["mean"] for m in predicted},
        "lds_diff": {k.removeprefix("diff:"): v for k, v in overall.items() if k.startswith("diff:")},
        "lds_by_kind": by_kind,
    }  # fmt: skip
    return metrics, per_query, predicted, actual


def leaveout_for_model(dirs: Mapping[str, Path], primary: str, n_bootstrap: int,
                       seed: int) -> tuple[dict[str, Any], pd.DataFrame]:  # fmt: skip
    """Mean Δ log p over the leave-out (fact) queries per method, and paired differences to
    ``primary``; negative Δ = the removal hurt the completion."""
    if not dirs:
        return {}, pd.DataFrame(
            columns=["method", "query", "logp_full", "logp", "delta", "n_removed"]
        )
    frames = []
    for method, d in dirs.items():
        f = read_measurements(d)
        f = f[f["leaveout"].astype(bool)].assign(method=method)
        f["n_removed"] = int(read_run_metrics(d)["n_removed_documents"])
        frames.append(f[["method", "query", "logp_full", "logp", "delta", "n_removed"]])
    table = pd.concat(frames, ignore_index=True)
    wide = table.pivot(index="query", columns="method", values="delta")
    per_method = {
        m: {**bootstrap_mean(wide[m].to_numpy(), n_bootstrap, seed),
            "n_removed": int(table.loc[table["method"] == m, "n_removed"].iloc[0]),
            "heldout_loss": float(read_run_metrics(dirs[m])["heldout_loss"])}
        for m in dirs
    }  # fmt: skip
    diffs = {
        f"{primary}-{m}": bootstrap_mean((wide[primary] - wide[m]).to_numpy(), n_bootstrap, seed)
        for m in dirs
        if m != primary and primary in wide
    }
    metrics = {
        "delta_logp": per_method,
        "delta_logp_mean": {m: v["mean"] for m, v in per_method.items()},
        "delta_diff": diffs,
        "n_leaveout_queries": int(len(wide)),
    }
    return metrics, table


def _model(inputs: CounterfactualInputs, model: str, queries: pd.DataFrame,
           cfg: Mapping[str, Any]) -> ModelResult:  # fmt: skip
    from llm_influence.counterfactual.estimators import load_estimators

    est = load_estimators(inputs.tables[model], inputs.tfidf)
    primary = next(iter(est.scores))  # the table's own method (factors.strategy)
    kind_of = {str(n): query_kind(t) for n, t in zip(queries["name"], queries["tags"])}
    kinds = [kind_of.get(q, "other") for q in est.queries]
    runs = inputs.runs[model]
    n_boot = int(cfg["n_bootstrap"])
    lds, per_query, predicted, actual = lds_for_model(
        est.scores, est.doc_id, est.queries, kinds, runs.subsets, n_boot, inputs.seed
    )
    leave, leave_table = leaveout_for_model(runs.leaveout, primary, n_boot, inputs.seed)
    ranked = per_query[per_query["method"] == primary].dropna(subset=["lds"])
    extremes = {}
    if len(ranked):
        for label, idx in (
            ("best_query", ranked["lds"].idxmax()),
            ("worst_query", ranked["lds"].idxmin()),
        ):
            extremes[label] = {"query": str(ranked.loc[idx, "query"]), "lds": float(ranked.loc[idx, "lds"])}  # fmt: skip
    metrics = {
        "primary": primary,
        "baseline": BASELINE,
        "methods": list(est.scores),
        "leaveout_methods": list(runs.leaveout),
        **lds,
        **leave,
        **extremes,
        "figures": {f: f"{f}_{model}.png" for f in FIGURES},
    }
    return ModelResult(metrics, per_query.assign(model=model), leave_table.assign(model=model),
                       predicted, actual, list(est.queries))  # fmt: skip


def run(inputs: CounterfactualInputs, cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Metrics of every model of ``inputs``; tables and figures go to ``inputs.out``."""
    from llm_influence.studies.counterfactual import plot_lds, plot_leaveout, plot_scatter
    from llm_influence.studies.figures import placeholder_figure, save_figure

    out = inputs.out
    out.mkdir(parents=True, exist_ok=True)
    settings = {k: cfg[k] for k in ("alpha", "subsets", "seeds", "remove_k", "n_bootstrap")}
    if not inputs.models:
        reason = ("counterfactual.models is empty: no model of this run is trained here, and a "
                  "pretrained checkpoint has no recipe to retrain it from scratch")  # fmt: skip
        save_figure(placeholder_figure(f"{STUDY}: nothing to show", reason), out / SKIP_FIGURE)
        return {"skipped": reason, "models": [], **settings}
    queries = read_queries(inputs.queries)
    per_model, lds_frames, leave_frames = {}, [], []
    for model in inputs.models:
        r = _model(inputs, model, queries, cfg)
        per_model[model] = r.metrics
        lds_frames.append(r.lds)
        leave_frames.append(r.leaveout)
        m = r.metrics
        save_figure(plot_lds(m, f"LDS per estimator, model {model} ({m['n_subsets']} subsets, "
                                f"α = {cfg['alpha']})"), out / f"lds_{model}.png")  # fmt: skip
        if "best_query" in m:
            rows = {f"best: {m['best_query']['query']} (LDS {m['best_query']['lds']:.2f})":
                    r.queries.index(m["best_query"]["query"]),
                    f"worst: {m['worst_query']['query']} (LDS {m['worst_query']['lds']:.2f})":
                    r.queries.index(m["worst_query"]["query"])}  # fmt: skip
            fig = plot_scatter(rows, r.predicted[m["primary"]], r.actual,
                               f"{m['primary']}, model {model}")  # fmt: skip
        else:
            fig = placeholder_figure("predicted vs retrained", "no query has a finite LDS")
        save_figure(fig, out / f"scatter_{model}.png")
        if m.get("delta_logp"):
            fig = plot_leaveout(m, f"Leave-top-{cfg['remove_k']}-out, {m['n_leaveout_queries']} "
                                   f"fact queries, model {model}")  # fmt: skip
        else:
            fig = placeholder_figure("leave-top-k-out", "no leave-out retraining")
        save_figure(fig, out / f"leaveout_{model}.png")
    write_parquet(out / "lds.parquet", pd.concat(lds_frames, ignore_index=True))
    write_parquet(out / "leaveout.parquet", pd.concat(leave_frames, ignore_index=True))
    return {"models": inputs.models, **settings, "per_model": per_model}


def counterfactual_study(ctx: StageContext) -> dict[str, Any]:
    """Stage entry of rule ``counterfactual``. Inputs: ``scores`` (tables of counterfactual.models,
    in order), ``subsets`` and ``leaveout`` (retraining dirs), ``tfidf``, ``queries`` (all absent
    when no model is retrained); output ``study`` (``results/studies/counterfactual``)."""
    from llm_influence.artifacts.scores import table_dirs
    from llm_influence.artifacts.studies import METRICS
    from llm_influence.studies.results import clean

    cfg = ctx.section("counterfactual")

    def paths(key: str) -> list[Path]:
        return table_dirs(ctx.input[key]) if ctx.input.get(key) else []

    inputs = CounterfactualInputs.from_paths(
        cfg["models"], paths("scores"), [*paths("subsets"), *paths("leaveout")],
        ctx.input.get("queries"), ctx.input.get("tfidf"), ctx.output["study"], ctx.seed,
    )  # fmt: skip
    metrics = clean({"study": STUDY, **run(inputs, cfg)})
    write_json(inputs.out / METRICS, metrics)
    return metrics
