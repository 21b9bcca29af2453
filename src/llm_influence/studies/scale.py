"""Scale (paper Fig. 1, 10–14): are the top sequences token-overlapping or thematically related?

For each model size, the top-k sequences of every query are classified (see
:func:`llm_influence.studies.data.classify_relations`) as *related* (same fact / proponent /
thematically related manifest category), *token_overlap* (only shares content words with the
query) or *unrelated*. The statistic is the share of each class, averaged over queries; the paper
finds it moves from token overlap to related as models grow. Also: for fact queries, whether a
ground-truth proponent is in the top 100 at every size, and recall@10 / MRR of the proponents.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from llm_influence.studies import data as D
from llm_influence.studies.claims import (
    INCONCLUSIVE,
    SANITY,
    Claim,
    Judgement,
    SummaryConfig,
    fmt,
    num,
    per_size,
    rises,
    share_verdict,
)
from llm_influence.studies.data import RELATIONS
from llm_influence.studies.figures import new_figure, save_figure, styled
from llm_influence.studies.results import share_dict
from llm_influence.studies.retrieval import (
    plot_retrieval,
    retrieval_metrics,
    simple_fact_queries,
    summarise_retrieval,
)
from llm_influence.utils.io import write_parquet, write_text

if TYPE_CHECKING:  # matplotlib loads inside the figure functions
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from llm_influence.studies.inputs import StudyInputs

RELATION_COLORS = {"related": "#2ca02c", "token_overlap": "#ff7f0e", "unrelated": "#c7c7c7"}
RELATION_LABELS = {
    "related": "thematically related",
    "token_overlap": "token overlap only",
    "unrelated": "neither",
}


def proponent_in_top(
    top: pd.DataFrame, queries: pd.DataFrame, models: Sequence[str], k: int = 100
) -> pd.DataFrame:
    """Per (model, query with proponents): whether any proponent is among the top k (rank ≤ k)."""
    props = {
        str(n): {int(d) for d in p}
        for n, p in zip(queries["name"], queries["proponents"])
        if len(p)
    }
    rows = []
    for model in models:
        sub = top[(top["model"] == model) & (top["rank"] <= k)]
        for q, p in props.items():
            docs = set(sub.loc[sub["query"] == q, "doc_id"].astype(int))
            rows.append({"model": model, "query": q, "hit": bool(docs & p)})
    return pd.DataFrame(rows, columns=["model", "query", "hit"])


def plot_stacked_shares(
    shares: pd.DataFrame,
    *,
    column: str,
    order: Sequence[str],
    title: str,
    colors: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    xlabel: str = "model size",
    ylabel: str = "share of top sequences",
    ax: Axes | None = None,
) -> Figure:
    """Stacked bars: x = model (categorical order kept), stacks = values of ``column``."""
    with styled():
        fig, ax = new_figure(ax, (max(6.5, 1.2 * shares["model"].nunique() + 4.0), 3.8))
        wide = shares.pivot_table(index="model", columns=column, values="share", observed=False,
                                  aggfunc="sum").fillna(0.0)  # fmt: skip
        wide = wide.reindex(columns=[c for c in order if c in wide.columns])
        bottom = None
        for c in wide.columns:
            vals = wide[c].to_numpy()
            ax.bar(
                [str(m) for m in wide.index], vals, bottom=bottom, width=0.6,
                color=(colors or {}).get(c), label=(labels or {}).get(c, str(c)),
            )  # fmt: skip
            bottom = vals if bottom is None else bottom + vals
        ax.set_ylim(0, 1)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig


def plot_relation_shares(shares: pd.DataFrame, title: str, ax: Axes | None = None) -> Figure:
    return plot_stacked_shares(
        shares, column="relation", order=RELATIONS, title=title,
        colors=RELATION_COLORS, labels=RELATION_LABELS, ax=ax,
    )  # fmt: skip


# ------------------------------------------------------------------------------ the study


def tfidf_matrix(
    candidates: pd.DataFrame, query_names: list[str], doc_ids: np.ndarray
) -> np.ndarray:
    """BM25 scores as [Q, N]; documents outside a query's candidates rank last (-inf)."""
    col = {int(d): i for i, d in enumerate(np.asarray(doc_ids))}
    row = {n: i for i, n in enumerate(query_names)}
    out = np.full((len(query_names), len(col)), -np.inf)
    for q, d, s in zip(candidates["query"], candidates["doc_id"], candidates["tfidf"]):
        if q in row and int(d) in col:
            out[row[q], col[int(d)]] = s
    return out


def ground_truth_retrieval(inputs: StudyInputs) -> tuple[dict[str, Any], pd.DataFrame]:
    """Recall@10 / MRR of the simple fact queries' proponents for the table's method, the
    gradient dot product and TF-IDF, each ranking every training document (issue 4)."""
    queries = inputs.queries
    simple = queries[simple_fact_queries(queries)]
    retrieval, rows = {}, []
    for m, t in inputs.tables().items():
        names = [n for n in simple["name"] if n in t.queries]
        qi = [t.queries.index(n) for n in names]
        props = list(simple.set_index("name").loc[names, "proponents"])
        methods = {t.method: t.total, **({"graddot": t.graddot} if t.graddot is not None else {})}
        if inputs.candidates is not None:
            methods["tfidf"] = tfidf_matrix(inputs.candidates, t.queries, t.doc_id)
        for method, mat in methods.items():
            summ = summarise_retrieval(retrieval_metrics(mat[qi], t.doc_id, props, names, k=10))
            rows.append({"model": m, "method": method, **summ})
            if method == t.method:
                retrieval[m] = {**summ, "method": method}
    return retrieval, pd.DataFrame(rows)


def run(inputs: StudyInputs, cfg: dict[str, Any]) -> dict[str, Any]:
    """Inputs: scores, queries, corpus, tfidf (optional). Figure ``scale.png``; ``top.parquet``,
    ``shares.parquet``, ``retrieval.parquet``/``.csv`` (recall@10, MRR per model and method)."""
    out, models, queries = inputs.out, inputs.models, inputs.queries
    k, fact_k = int(cfg["top_k"]), int(cfg["fact_top_k"])
    top_all = D.top_documents(inputs.scores, max(k, fact_k))
    top = inputs.classify(top_all[top_all["rank"] <= k], queries, cfg)
    shares = D.relation_shares(top, models)
    write_parquet(out / "top.parquet", top.astype({"relation": str}))
    write_parquet(out / "shares.parquet", shares.astype({"model": str, "relation": str}))
    save_figure(plot_relation_shares(shares, f"Top-{k} influential sequences by model size"),
                out / "scale.png")  # fmt: skip
    hits = proponent_in_top(top_all, inputs.queries_with("factual"), models, fact_k)
    retrieval, retrieval_table = ground_truth_retrieval(inputs)
    write_parquet(out / "retrieval.parquet", retrieval_table)
    write_text(out / "retrieval.csv", retrieval_table.to_csv(index=False, float_format="%.4f"))
    if len(retrieval_table):
        save_figure(plot_retrieval(retrieval_table), out / "retrieval.png")
    by_relation = share_dict(shares, "relation")
    related = {m: v.get("related", float("nan")) for m, v in by_relation.items()}
    related_note = None if inputs.related_possible(queries, cfg) else D.NO_RELATED
    if related_note:
        related = {}
    return {
        "top_k": k,
        "figure": "scale.png",
        "shares": by_relation,
        "related_share": [related.get(m) for m in models],
        "token_overlap_share": [by_relation.get(m, {}).get("token_overlap") for m in models],
        "related_increases": D.increasing([related.get(m, np.nan) for m in models]),
        **({"related_skipped": related_note} if related_note else {}),
        "fact_top_k": fact_k,
        "fact_hit_share": [
            float(hits.loc[hits["model"] == m, "hit"].mean()) if len(hits) else None for m in models
        ],
        "n_fact_queries": int(hits["query"].nunique()) if len(hits) else 0,
        "retrieval": retrieval,
        "retrieval_by_method": retrieval_table.to_dict(orient="records"),
    }


# ------------------------------------------------------------------------------ its claims


def _related(sc: dict[str, Any], cfg: SummaryConfig) -> Judgement:
    ours = (f"related share {per_size(cfg.models, sc.get('related_share'))}; "
            f"token-overlap-only share {per_size(cfg.models, sc.get('token_overlap_share'))}"
            + (f" ({sc['related_skipped']})" if sc.get("related_skipped") else ""))  # fmt: skip
    return Judgement(ours, rises(sc.get("related_share"), cfg.report["min_rise"]), sc.get("figure"))


def _facts(sc: dict[str, Any], cfg: SummaryConfig) -> Judgement:
    hits = [num(x) for x in sc.get("fact_hit_share") or []]
    fin = [h for h in hits if np.isfinite(h)]
    if not fin or sc.get("n_fact_queries", 0) == 0:
        verdict = INCONCLUSIVE
    else:
        verdict = share_verdict(min(fin), cfg.report["hit_min"], cfg.report["hit_fail"])
    ours = f"share of {sc.get('n_fact_queries')} fact queries: {per_size(cfg.models, hits)}"
    return Judgement(ours, verdict, sc.get("figure"))


def _retrieval(sc: dict[str, Any], cfg: SummaryConfig) -> Judgement:
    ret = sc.get("retrieval", {})
    mrr = [num(ret.get(m, {}).get("mrr")) for m in cfg.models]
    rec = [num(ret.get(m, {}).get("recall@10")) for m in cfg.models]
    main_method = ret.get(cfg.largest, {}).get("method")
    others = "; ".join(
        f"{r.get('method')} ({r.get('model')}): recall@10 {fmt(r.get('recall@10'))}, MRR {fmt(r.get('mrr'))}"
        for r in sc.get("retrieval_by_method", []) if r.get("method") != main_method
    )  # fmt: skip
    ours = f"{main_method or 'influence'}: recall@10 {per_size(cfg.models, rec)}; MRR {per_size(cfg.models, mrr)}"
    ours += f" (baselines: {others})" if others else ""
    return Judgement(ours, share_verdict(mrr[-1], 0.5, 0.1), "retrieval.png")


CLAIMS = [
    Claim("scale.related", "Small models' top sequences share tokens with the query, large models' are thematically related",
          "token overlap at 810M → related at 52B (qualitative)",
          lambda c: f"holds if the related share rises with size by ≥ {c['min_rise']} (no drop beyond 10 % of the spread); does not hold if the largest ≤ the smallest",
          _related),
    Claim("scale.facts", "Simple facts: a document stating the answer is in the top {fact_top_k} at every size",
          "at every size (810M–52B)",
          lambda c: f"holds if the share is ≥ {c['hit_min']} at every size; does not hold if < {c['hit_fail']} at some size",
          _facts),
    Claim("sanity.retrieval", "on simple fact queries, the documents stating the fact rank high by influence",
          "—", lambda c: "holds if the largest model's MRR ≥ 0.5; does not hold if < 0.1", _retrieval, kind=SANITY),
]  # fmt: skip
