"""Counterfactual study: do the influence scores predict what retraining does?

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

``CLAIMS`` are the two validity checks of the summary (not paper claims). The maths is in
:mod:`llm_influence.counterfactual.lds`; this module only assembles, judges and draws.
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
from llm_influence.counterfactual.spec import RANDOM_CONTROL, TFIDF
from llm_influence.counterfactual.subsets import subset_masks
from llm_influence.studies.data import query_kind
from llm_influence.utils.io import write_json, write_parquet

STUDY = "counterfactual"
PRIMARY = "ekfac"  # the estimator the validity checks are about
BASELINE = "graddot"  # the one it must beat on the LDS
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


def counterfactual_study(ctx: Any) -> dict[str, Any]:
    """Stage entry of rule ``counterfactual``. Inputs: ``scores`` (tables of counterfactual.models,
    in order), ``subsets`` and ``leaveout`` (retraining dirs), ``tfidf``, ``queries`` (all absent
    when no model is retrained); output ``study`` (``results/studies/counterfactual``)."""
    from llm_influence.artifacts.scores import table_dirs
    from llm_influence.artifacts.studies import METRICS
    from llm_influence.studies.stage import _clean

    cfg = ctx.section("counterfactual")

    def paths(key: str) -> list[Path]:
        return table_dirs(ctx.input[key]) if ctx.input.get(key) else []

    inputs = CounterfactualInputs.from_paths(
        cfg["models"], paths("scores"), [*paths("subsets"), *paths("leaveout")],
        ctx.input.get("queries"), ctx.input.get("tfidf"), ctx.output["study"], ctx.seed,
    )  # fmt: skip
    metrics = _clean({"study": STUDY, **run(inputs, cfg)})
    write_json(inputs.out / METRICS, metrics)
    return metrics


# ------------------------------------------------------------------ validity checks (summary)
# Each returns (ours, verdict, figure); verdicts: holds / does not hold / inconclusive.

HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive"


def _f(x: Any, spec: str = ".3f") -> str:
    return "n/a" if x is None or not np.isfinite(float(x)) else format(float(x), spec)


def _interval(s: Mapping[str, Any]) -> str:
    return f"{_f(s.get('mean'))} [{_f(s.get('low'))}, {_f(s.get('high'))}]"


def _combine(verdicts: list[str]) -> str:
    """Every model must agree for holds / does not hold."""
    if verdicts and all(v == HOLDS for v in verdicts):
        return HOLDS
    if verdicts and all(v == FAILS for v in verdicts):
        return FAILS
    return INCONCLUSIVE


def judge_lds(metrics: Mapping[str, Any]) -> tuple[str, str, str | None]:
    """EK-FAC mean LDS > gradient-dot mean LDS, on every retrained model."""
    parts, verdicts, figure = [], [], None
    for model, m in (metrics.get("per_model") or {}).items():
        lds = m.get("lds", {})
        ek, gd = lds.get(PRIMARY, {}).get("mean"), lds.get(BASELINE, {}).get("mean")
        if ek is None or gd is None:
            verdicts.append(INCONCLUSIVE)
            parts.append(f"{model}: no {PRIMARY} or {BASELINE} LDS (table has {m.get('methods')})")
            continue
        verdicts.append(HOLDS if ek > gd else FAILS)
        diff = m.get("lds_diff", {}).get(f"{PRIMARY}-{BASELINE}", {})
        others = ", ".join(
            f"{k} {_interval(v)}" for k, v in lds.items() if k not in (PRIMARY, BASELINE)
        )
        parts.append(f"{model}, {m.get('n_subsets')} subsets × {m.get('n_queries')} queries: "
                     f"LDS {PRIMARY} {_interval(lds[PRIMARY])}, {BASELINE} {_interval(lds[BASELINE])}; "
                     f"paired difference {_interval(diff)}"
                     + (f"; others: {others}" if others else ""))  # fmt: skip
        figure = figure or m.get("figures", {}).get("lds")
    return "; ".join(parts) or "no model retrained", _combine(verdicts), figure


def judge_leaveout(metrics: Mapping[str, Any]) -> tuple[str, str, str | None]:
    """Removing the EK-FAC top-k lowers log p more than removing the TF-IDF top-k and than a
    random set of the same size, on every retrained model."""
    parts, verdicts, figure = [], [], None
    for model, m in (metrics.get("per_model") or {}).items():
        d = m.get("delta_logp", {})
        means = {k: d.get(k, {}).get("mean") for k in (PRIMARY, TFIDF, RANDOM_CONTROL)}
        if any(v is None or not np.isfinite(v) for v in means.values()):
            verdicts.append(INCONCLUSIVE)
            parts.append(f"{model}: leave-out runs missing ({sorted(d)})")
            continue
        lower = means[PRIMARY] < means[TFIDF] and means[PRIMARY] < means[RANDOM_CONTROL]
        verdicts.append(HOLDS if lower else FAILS)
        n = d[PRIMARY].get("n_removed")
        shown = ", ".join(f"{k} {_interval(v)}" for k, v in d.items())
        parts.append(f"{model}, {n} documents removed, {m.get('n_leaveout_queries')} fact queries: "
                     f"mean Δ log p {shown}")  # fmt: skip
        figure = figure or m.get("figures", {}).get("leaveout")
    return "; ".join(parts) or "no model retrained", _combine(verdicts), figure


# (id, claim, rule, judge): validity checks of the scores against retraining, not paper claims
CHECKS = (
    ("counterfactual.lds", "EK-FAC LDS > gradient-dot LDS (scores predict subset retraining)",
     "holds if EK-FAC's mean LDS (Spearman over subsets, mean over queries; bracket: bootstrap "
     "95 % interval) exceeds the gradient dot product's on every retrained model; does not hold "
     "if it is lower on every one", judge_lds),
    ("counterfactual.leaveout", "Removing the EK-FAC top-k lowers log p more than removing the "
     "TF-IDF top-k and than random removal",
     "holds if the mean Δ log p(completion) of the fact queries after removing EK-FAC's top-k "
     "(union over the queries) and retraining is below both TF-IDF's and the random set's on "
     "every retrained model; does not hold if not on every one", judge_leaveout),
)  # fmt: skip


# ---------------------------------------------------------------------------------------- figures


def _color(method: str) -> str | None:
    return {TFIDF: "tab:gray", RANDOM_CONTROL: "lightgray", BASELINE: "tab:orange",
            PRIMARY: "tab:blue"}.get(method)  # fmt: skip


def _bars(ax: Any, labels: list[str], stats: list[Mapping[str, Any]], colors: list) -> None:
    """Bars at each mean with the 95 % interval as error bars (none where it is undefined)."""
    nan = float("nan")
    means = np.array([s.get("mean", nan) if s.get("mean") is not None else nan for s in stats])
    low = np.array([s.get("low") if s.get("low") is not None else nan for s in stats], float)
    high = np.array([s.get("high") if s.get("high") is not None else nan for s in stats], float)
    err = np.nan_to_num(np.vstack([means - low, high - means]), nan=0.0).clip(min=0)
    ax.bar(range(len(labels)), np.nan_to_num(means), yerr=err, capsize=4,
           color=[c or f"C{i + 2}" for i, c in enumerate(colors)])  # fmt: skip
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels)
    ax.axhline(0, color="k", lw=0.8)


def plot_lds(m: Mapping[str, Any], title: str) -> Any:
    """Left: mean LDS per method with the bootstrap 95 % interval; right: per query kind."""
    from matplotlib.figure import Figure

    from llm_influence.studies.figures import styled

    methods = list(m["lds"])
    kinds = list(m["lds_by_kind"])
    with styled():
        fig = Figure(figsize=(10.0, 3.8), layout="constrained")
        ax, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 2.2]})
        _bars(ax, methods, [m["lds"][k] for k in methods], [_color(k) for k in methods])
        ax.set_ylabel("LDS (Spearman over subsets, mean over queries)")
        ax.set_xlabel("estimator")
        ax.set_title("all queries (bars: 95 % bootstrap interval)")
        width = 0.8 / max(1, len(methods))
        for j, k in enumerate(methods):
            vals = [m["lds_by_kind"][kind][k]["mean"] for kind in kinds]
            vals = [np.nan if v is None else v for v in vals]
            ax2.bar(np.arange(len(kinds)) + (j - (len(methods) - 1) / 2) * width, vals, width,
                    label=k, color=_color(k) or f"C{j + 2}")  # fmt: skip
        ax2.set_xticks(range(len(kinds)))
        ax2.set_xticklabels(kinds, rotation=20)
        ax2.axhline(0, color="k", lw=0.8)
        ax2.set_ylabel("LDS (mean over the kind's queries)")
        ax2.set_xlabel("query kind")
        ax2.set_title("by query kind")
        ax2.legend(frameon=False)
        fig.suptitle(title)
    return fig


def plot_scatter(
    rows: Mapping[str, int], predicted: np.ndarray, actual: np.ndarray, title: str
) -> Any:
    """Predicted Σ score over each subset vs the retrained log p, one panel per chosen query."""
    from matplotlib.figure import Figure

    from llm_influence.studies.figures import styled

    with styled():
        fig = Figure(figsize=(9.0, 3.6), layout="constrained")
        axes = fig.subplots(1, len(rows), squeeze=False)[0]
        for ax, (label, q) in zip(axes, rows.items()):
            ax.scatter(predicted[q], actual[q], s=18)
            ax.set_xlabel("predicted: Σ score over the subset (score units)")
            ax.set_ylabel("retrained log p(completion | prompt) (nats)")
            ax.set_title(label)
        fig.suptitle(f"Predicted vs retrained, one point per subset: {title}")
    return fig


def plot_leaveout(m: Mapping[str, Any], title: str) -> Any:
    """Bars: mean change of log p(completion) when each method's top documents are removed."""
    from llm_influence.studies.figures import new_figure, styled

    d = m["delta_logp"]
    methods = list(d)
    with styled():
        fig, ax = new_figure(None, (6.5, 3.8))
        _bars(ax, [f"{k}\n({d[k]['n_removed']} docs)" for k in methods],
              [d[k] for k in methods], [_color(k) for k in methods])  # fmt: skip
        ax.set_ylabel("Δ log p(completion), retrained − full (nats)")
        ax.set_xlabel("documents removed by (95 % bootstrap interval over queries)")
        ax.set_title(title)
    return fig
