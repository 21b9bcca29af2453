"""Ground-truth sanity check on the embedded world: do the documents that state a query's fact
rank high? Recall@k and MRR for EK-FAC, gradient dot product and TF-IDF side by side (lexical
baselines are strong on fact tracing; they are reported, not hidden)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from llm_influence.studies.retrieval import retrieval_metrics, summarise_retrieval  # noqa: E402
from llm_influence.utils.io import atomic_path, load_tensors, write_json, write_parquet  # noqa: E402
from llm_influence.workflow.context import StageContext  # noqa: E402

METHODS = ("ekfac", "graddot", "tfidf")


def simple_fact_queries(queries: pd.DataFrame) -> pd.Series:
    """English fact queries in the order the facts are mostly stated (the paper's `water` kind)."""
    tags = queries["tags"].apply(lambda t: set(t))
    forward = queries["order"].fillna("forward") == "forward" if "order" in queries else True
    return (
        tags.apply(lambda t: "factual" in t and "translation" not in t)
        & (queries["language"] == "en")
        & forward
    )


def tfidf_matrix(
    candidates: pd.DataFrame, query_names: list[str], doc_ids: np.ndarray
) -> np.ndarray:
    """BM25 scores as a [Q, N] matrix; documents outside a query's candidates get -inf."""
    col = {int(d): i for i, d in enumerate(doc_ids)}
    row = {n: i for i, n in enumerate(query_names)}
    out = np.full((len(query_names), len(doc_ids)), -np.inf)
    for q, d, s in zip(candidates["query"], candidates["doc_id"], candidates["tfidf"]):
        if q in row and int(d) in col:
            out[row[q], col[int(d)]] = s
    return out


def evaluate(
    tables: dict[str, Path], queries: pd.DataFrame, candidates: pd.DataFrame, k: int
) -> pd.DataFrame:
    """Per-query metrics for every model and method (tidy)."""
    names = list(queries["name"])
    proponents = [list(p) if p is not None else [] for p in queries["proponents"]]
    frames = []
    for model, table in tables.items():
        tensors, meta = load_tensors(Path(table) / "scores.safetensors")
        if list(meta["queries"]) != names:
            raise ValueError(f"{table}: query order differs from queries.parquet")
        doc_ids = tensors["doc_id"].numpy()
        matrices = {
            "ekfac": tensors["total"].double().numpy(),
            "graddot": tensors["graddot"].double().numpy(),
            "tfidf": tfidf_matrix(candidates, names, doc_ids),
        }
        for method, scores in matrices.items():
            per_query = retrieval_metrics(scores, doc_ids, proponents, names, k=k)
            per_query.insert(0, "method", method)
            per_query.insert(0, "model", model)
            frames.append(per_query)
    return pd.concat(frames, ignore_index=True)


def retrieval_figure(summary: pd.DataFrame, k: int) -> plt.Figure:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for ax, metric, label in zip(
        axes, [f"recall@{k}", "mrr"], [f"recall@{k} (share of proponents)", "MRR"]
    ):
        sns.barplot(data=summary, x="model", y=metric, hue="method", hue_order=list(METHODS), ax=ax)
        ax.set_ylim(0, 1)
        ax.set_xlabel("model (size order)")
        ax.set_ylabel(label)
        ax.set_title(f"{label} of fact-stating documents")
    fig.suptitle("Ground truth: simple fact queries (higher is better)")
    return fig


def ground_truth_retrieval(ctx: StageContext) -> dict[str, Any]:
    """Stage entry: inputs ``scores`` (table dirs in model order), ``queries``, ``tfidf``."""
    k = int(ctx.section("studies").get("retrieval_k", 10))
    models = list(ctx.config["models"])
    tables = dict(zip(models, ctx.input["scores"]))
    queries = pd.read_parquet(Path(ctx.input["queries"]) / "queries.parquet")
    candidates = pd.read_parquet(Path(ctx.input["tfidf"]) / "candidates.parquet")
    per_query = evaluate(tables, queries, candidates, k)
    simple = set(queries.loc[simple_fact_queries(queries), "name"])
    per_query["simple_fact"] = per_query["query"].isin(simple)

    out = Path(ctx.output["study"])
    write_parquet(out / "retrieval.parquet", per_query)
    rows = []
    for (model, method), group in per_query[per_query["simple_fact"]].groupby(
        ["model", "method"], sort=False
    ):
        rows.append({"model": model, "method": method, **summarise_retrieval(group)})
    summary = pd.DataFrame(rows)
    summary.to_csv(out / "retrieval_summary.csv", index=False, float_format="%.4f")
    fig = retrieval_figure(summary, k)
    with atomic_path(out / "retrieval.png") as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    metrics = {
        f"{r['method']}_{key}_{r['model']}": r[key] for r in rows for key in (f"recall@{k}", "mrr")
    }
    metrics["n_simple_fact_queries"] = len(simple)
    metrics["k"] = k
    write_json(out / "metrics.json", metrics)
    return metrics
