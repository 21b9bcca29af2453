"""Claims and figures of the counterfactual study (validity checks of the scores against
retraining; not paper claims).

The study has its own rule and runs in :mod:`llm_influence.counterfactual.study` (which reads the
retrainings); its figure functions and its summary rows (``CLAIMS``) live here, torch-free.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from llm_influence.counterfactual.spec import RANDOM_CONTROL, TFIDF
from llm_influence.studies.claims import (
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    VALIDITY,
    Claim,
    Judgement,
    SummaryConfig,
    verdict_of,
)

PRIMARY = "ekfac"  # the estimator the validity checks are about
BASELINE = "graddot"  # the one it must beat on the LDS


# ------------------------------------------------------------------ validity checks (summary)


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


def judge_lds(metrics: Mapping[str, Any], cfg: SummaryConfig | None = None) -> Judgement:
    """EK-FAC mean LDS > gradient-dot mean LDS, on every retrained model."""
    parts, verdicts, figure = [], [], None
    for model, m in (metrics.get("per_model") or {}).items():
        lds = m.get("lds", {})
        ek, gd = lds.get(PRIMARY, {}).get("mean"), lds.get(BASELINE, {}).get("mean")
        if ek is None or gd is None:
            verdicts.append(INCONCLUSIVE)
            parts.append(f"{model}: no {PRIMARY} or {BASELINE} LDS (table has {m.get('methods')})")
            continue
        verdicts.append(verdict_of(ek > gd))
        diff = m.get("lds_diff", {}).get(f"{PRIMARY}-{BASELINE}", {})
        others = ", ".join(
            f"{k} {_interval(v)}" for k, v in lds.items() if k not in (PRIMARY, BASELINE)
        )
        parts.append(f"{model}, {m.get('n_subsets')} subsets × {m.get('n_queries')} queries: "
                     f"LDS {PRIMARY} {_interval(lds[PRIMARY])}, {BASELINE} {_interval(lds[BASELINE])}; "
                     f"paired difference {_interval(diff)}"
                     + (f"; others: {others}" if others else ""))  # fmt: skip
        figure = figure or m.get("figures", {}).get("lds")
    return Judgement("; ".join(parts) or "no model retrained", _combine(verdicts), figure)


def judge_leaveout(metrics: Mapping[str, Any], cfg: SummaryConfig | None = None) -> Judgement:
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
        verdicts.append(verdict_of(lower))
        n = d[PRIMARY].get("n_removed")
        shown = ", ".join(f"{k} {_interval(v)}" for k, v in d.items())
        parts.append(f"{model}, {n} documents removed, {m.get('n_leaveout_queries')} fact queries: "
                     f"mean Δ log p {shown}")  # fmt: skip
        figure = figure or m.get("figures", {}).get("leaveout")
    return Judgement("; ".join(parts) or "no model retrained", _combine(verdicts), figure)


CLAIMS = [
    Claim("counterfactual.lds", "EK-FAC LDS > gradient-dot LDS: the scores predict what retraining on random half subsets does",
          "— (published, other data: EK-FAC LDS ≈ 0.44–0.47, gradient dot ≈ 0.12 on GPT-2 / WikiText-2)",
          lambda c: "holds if EK-FAC's mean LDS (Spearman over subsets, mean over queries; brackets: "
                    "bootstrap 95 % interval) exceeds the gradient dot product's on every retrained "
                    "model; does not hold if it does on none; inconclusive when the models disagree", judge_lds, kind=VALIDITY),
    Claim("counterfactual.leaveout", "Removing the EK-FAC top-k lowers log p more than removing the TF-IDF top-k and than random removal",
          "— (the leave-top-k-out check of the attribution literature)",
          lambda c: "holds if, after retraining, the fact queries' mean Δ log p(completion) without "
                    "EK-FAC's top-k (union over the queries) is below both TF-IDF's and a random set's "
                    "of the same size on every retrained model; does not hold if on none; "
                    "inconclusive when the models disagree",
          judge_leaveout, kind=VALIDITY),
]  # fmt: skip


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
