"""Stage entry points of the study rules (one per study) and of the summary table.

Every study ``fn(ctx)`` reads (docs/design.md "Artifacts"):

* ``ctx.input["scores"]``: list of ``results/scores/{model}/table`` dirs, in the order of
  ``ctx.config["models"]`` (a single path is accepted for one model);
* ``ctx.input["queries"]``: ``data/queries`` dir; ``ctx.input["corpus"]``: ``data/corpus`` dir
  (studies that need the manifest/texts); ``ctx.input["tfidf"]``: ``results/tfidf`` (sparsity,
  optional); ``ctx.input["models"]`` (optional): model dirs whose ``metrics.json`` n_params label
  the sizes;

and writes into the directory ``ctx.output["study"]`` (``results/studies/{study}``): PNG figures,
``metrics.json`` and tidy tables (parquet). Settings: ``ctx.section("studies")`` — shared keys at
the top, one sub-block per study. The returned dict (the metrics) goes to provenance.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llm_influence.artifacts.corpus import read_documents, read_manifest
from llm_influence.artifacts.queries import read_queries
from llm_influence.artifacts.scores import ScoreTable, load_tables, read_tokens, table_dirs
from llm_influence.artifacts.studies import METRICS, read_metrics
from llm_influence.artifacts.tfidf import read_candidates
from llm_influence.artifacts.tokenized import read_model_metrics
from llm_influence.studies import data as D
from llm_influence.utils.io import write_json, write_parquet, write_text
from llm_influence.workflow.context import StageContext


def save_figure(fig: Any, path: Path, **kw: Any) -> None:
    """Deferred import: matplotlib loads only in the stages that draw (not in ``summary``)."""
    from llm_influence.studies import figures

    figures.save_figure(fig, path, **kw)


def placeholder_figure(title: str, reason: str) -> Any:
    from llm_influence.studies import figures

    return figures.placeholder_figure(title, reason)


# ---------------------------------------------------------------------------------------- helpers


def _models(ctx: StageContext) -> list[str]:
    return [str(m) for m in ctx.config["models"]]


def _settings(ctx: StageContext, study: str) -> dict[str, Any]:
    s = dict(ctx.section("studies"))
    own = s.pop(study, {}) or {}
    for other in STUDIES:
        s.pop(other, None)
    return {**s, **own}


def _out(ctx: StageContext) -> Path:
    out = Path(ctx.output["study"])
    out.mkdir(parents=True, exist_ok=True)
    return out


def _clean(obj: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def _n_params(ctx: StageContext) -> list[int | None] | None:
    """n_params of each model from ``ctx.input["models"]`` (optional) model dirs' metrics.json."""
    dirs = ctx.input.get("models")
    if not dirs:
        return None
    return [(read_model_metrics(d) or {}).get("n_params") for d in table_dirs(dirs)]


def _finish(ctx: StageContext, out: Path, study: str, metrics: dict[str, Any]) -> dict[str, Any]:
    metrics = _clean(
        {"study": study, "models": _models(ctx), "n_params": _n_params(ctx), **metrics}
    )
    write_json(out / METRICS, metrics)
    return metrics


def _skip(ctx: StageContext, out: Path, study: str, metrics: dict, reason: str, figures: list[str]):
    """Metrics with the reason, and placeholder figures under the usual names."""
    metrics["skipped"] = reason
    for name in figures:
        save_figure(placeholder_figure(f"{study}: nothing to show", reason), out / name)
    return _finish(ctx, out, study, metrics)


def _scores(ctx: StageContext, with_layers: bool = False) -> dict[str, ScoreTable]:
    return load_tables(_models(ctx), ctx.input["scores"], with_layers=with_layers)


def _queries_with(queries: pd.DataFrame, tag: str) -> pd.DataFrame:
    return queries[[D.has_tag(t, tag) for t in queries["tags"]]].reset_index(drop=True)


def _restrict(scores: pd.DataFrame, names) -> pd.DataFrame:
    return scores[scores["query"].isin(list(names))]


def _classify(ctx: StageContext, top: pd.DataFrame, queries: pd.DataFrame) -> pd.DataFrame:
    cfg = ctx.section("studies")
    docs, manifest = read_documents(ctx.input["corpus"]), read_manifest(ctx.input["corpus"])
    return D.classify_relations(
        top, queries, docs, manifest,
        content_df_max=float(cfg.get("content_df_max", 0.1)),
        related_categories=cfg.get("related_categories", {}) or {},
    )  # fmt: skip


def _related_possible(ctx: StageContext, queries: pd.DataFrame) -> bool:
    """False when no document can be ``related`` to any query (an hf corpus): the related shares
    are then recorded as null, and the summary calls the claim inconclusive, not failed."""
    cfg = ctx.section("studies")
    manifest = read_manifest(ctx.input["corpus"])
    return D.can_be_related(queries, manifest, cfg.get("related_categories", {}) or {})


def _share_dict(shares: pd.DataFrame, column: str) -> dict[str, dict[str, float]]:
    return {
        str(m): {str(c): float(s) for c, s in zip(g[column], g["share"])}
        for m, g in shares.groupby("model", observed=False)
    }


# ---------------------------------------------------------------------------------------- studies


def sparsity(ctx: StageContext) -> dict[str, Any]:
    """Inputs: scores, tfidf (optional). Figures ``sparsity_{model}.png``; ``stats.parquet``."""
    from llm_influence.studies.sparsity import ccdf_frame, plot_sparsity, sparsity_stats

    cfg = _settings(ctx, "sparsity")
    out = _out(ctx)
    scores = D.scores_frame(_scores(ctx))
    cand = None
    if ctx.input.get("tfidf"):
        cand = read_candidates(ctx.input["tfidf"])
    xmin = cfg.get("xmin")
    stats = sparsity_stats(
        scores,
        top_fraction=float(cfg.get("top_fraction", 0.01)),
        threshold=float(cfg.get("threshold", 0.1)),
        min_tail=int(cfg.get("min_tail", 50)),
        max_candidates=int(cfg.get("max_xmin_candidates", 100)),
        n_bootstrap=int(cfg.get("n_bootstrap", 100)),
        seed=ctx.seed,
        xmin=None if xmin is None else float(xmin),
        n_jobs=max(1, int(ctx.threads)),
    )
    write_parquet(out / "stats.parquet", stats)
    p_gof = float(cfg.get("gof_threshold", 0.1))
    per_model = {}
    for model in _models(ctx):
        st = stats[stats["model"] == model]
        curves = ccdf_frame(scores[scores["model"] == model], cand)
        fig = plot_sparsity(
            curves, st, title=f"Influence tails, model {model} (log–log CCDF)",
            queries=list(st["query"])[: int(cfg.get("max_panels", 12))],
        )  # fmt: skip
        save_figure(fig, out / f"sparsity_{model}.png", dpi=int(cfg.get("dpi", 120)))
        fitted = st[st["alpha"].notna()]
        per_model[model] = {
            "figure": f"sparsity_{model}.png",
            "n_queries": int(len(st)),
            "n_fitted": int(len(fitted)),
            "alpha_median": float(fitted["alpha"].median()) if len(fitted) else None,
            "alpha_min": float(fitted["alpha"].min()) if len(fitted) else None,
            "alpha_max": float(fitted["alpha"].max()) if len(fitted) else None,
            "n_gof_tested": int(fitted["p_gof"].notna().sum()),
            "n_rejected": int((fitted["p_gof"] < p_gof).sum()),
            "n_pl_over_exp": int(((fitted["lr_exp_R"] > 0) & (fitted["lr_exp_p"] < p_gof)).sum()),
            "n_exp_over_pl": int(((fitted["lr_exp_R"] < 0) & (fitted["lr_exp_p"] < p_gof)).sum()),
            "n_pl_over_lognormal": int(
                ((fitted["lr_lognormal_R"] > 0) & (fitted["lr_lognormal_p"] < p_gof)).sum()
            ),
            "n_lognormal_over_pl": int(
                ((fitted["lr_lognormal_R"] < 0) & (fitted["lr_lognormal_p"] < p_gof)).sum()
            ),
            "top_share_median": float(st["top_share"].median()),
            "top_share_min": float(st["top_share"].min()),
            "top_share_max": float(st["top_share"].max()),
            "frac_above_threshold_mean": float(st["frac_above_threshold"].mean()),
        }
    return _finish(ctx, out, "sparsity", {"per_model": per_model, "gof_threshold": p_gof,
                                          "top_fraction": float(cfg.get("top_fraction", 0.01))})  # fmt: skip


def scale(ctx: StageContext) -> dict[str, Any]:
    """Inputs: scores, queries, corpus, tfidf (optional). Figure ``scale.png``; ``top.parquet``,
    ``shares.parquet``, ``retrieval.parquet``/``.csv`` (recall@10, MRR per model and method)."""
    from llm_influence.studies.retrieval import (
        plot_retrieval,
        retrieval_metrics,
        simple_fact_queries,
        summarise_retrieval,
    )
    from llm_influence.studies.scale import plot_relation_shares, proponent_in_top

    cfg = _settings(ctx, "scale")
    out = _out(ctx)
    models = _models(ctx)
    tables = _scores(ctx)
    queries = read_queries(ctx.input["queries"])
    scores = D.scores_frame(tables)
    k = int(cfg.get("top_k", 10))
    fact_k = int(cfg.get("fact_top_k", 100))
    top_all = D.top_documents(scores, max(k, fact_k))
    top = _classify(ctx, top_all[top_all["rank"] <= k], queries)
    shares = D.relation_shares(top, models)
    write_parquet(out / "top.parquet", top.astype({"relation": str}))
    write_parquet(out / "shares.parquet", shares.astype({"model": str, "relation": str}))
    save_figure(plot_relation_shares(shares, f"Top-{k} influential sequences by model size"),
                out / "scale.png")  # fmt: skip
    facts = _queries_with(queries, "factual")
    hits = proponent_in_top(top_all, facts, models, fact_k)
    # ground-truth retrieval (issue 4) on the simple fact queries: the table's method, the gradient
    # dot product and TF-IDF, each ranking every training document
    simple = queries[simple_fact_queries(queries)]
    retrieval, rows = {}, []
    for m, t in tables.items():
        names = [n for n in simple["name"] if n in t.queries]
        qi = [t.queries.index(n) for n in names]
        props = list(simple.set_index("name").loc[names, "proponents"])
        methods = {t.method: t.total, **({"graddot": t.graddot} if t.graddot is not None else {})}
        if ctx.input.get("tfidf"):
            cand = read_candidates(ctx.input["tfidf"])
            methods["tfidf"] = _tfidf_matrix(cand, t.queries, t.doc_id)
        for method, mat in methods.items():
            summ = summarise_retrieval(retrieval_metrics(mat[qi], t.doc_id, props, names, k=10))
            rows.append({"model": m, "method": method, **summ})
            if method == t.method:
                retrieval[m] = {**summ, "method": method}
    retrieval_table = pd.DataFrame(rows)
    write_parquet(out / "retrieval.parquet", retrieval_table)
    write_text(out / "retrieval.csv", retrieval_table.to_csv(index=False, float_format="%.4f"))
    if len(retrieval_table):
        save_figure(plot_retrieval(retrieval_table), out / "retrieval.png")
    related = {
        m: v.get("related", float("nan")) for m, v in _share_dict(shares, "relation").items()
    }
    related_note = None if _related_possible(ctx, queries) else D.NO_RELATED
    if related_note:
        related = {}
    metrics = {
        "top_k": k,
        "figure": "scale.png",
        "shares": _share_dict(shares, "relation"),
        "related_share": [related.get(m) for m in models],
        "token_overlap_share": [
            _share_dict(shares, "relation").get(m, {}).get("token_overlap") for m in models
        ],
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
    return _finish(ctx, out, "scale", metrics)


def _tfidf_matrix(
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


def roleplay(ctx: StageContext) -> dict[str, Any]:
    """Inputs: scores, queries, corpus. Figures ``roleplay_categories.png``, ``roleplay_relations.png``."""
    from llm_influence.studies.roleplay import category_shares, plot_categories
    from llm_influence.studies.scale import plot_relation_shares

    cfg = _settings(ctx, "roleplay")
    out = _out(ctx)
    models = _models(ctx)
    queries = _queries_with(read_queries(ctx.input["queries"]), str(cfg.get("tag", "role-play")))
    k = int(cfg.get("top_k", 20))
    metrics: dict[str, Any] = {"top_k": k, "queries": list(queries["name"])}
    if len(queries) == 0:
        return _skip(ctx, out, "roleplay", metrics, "no role-play queries",
                     ["roleplay_categories.png", "roleplay_relations.png"])  # fmt: skip
    scores = _restrict(D.scores_frame(_scores(ctx)), queries["name"])
    top = _classify(ctx, D.top_documents(scores, k), queries)
    cats = category_shares(top, models)
    rel = D.relation_shares(top, models)
    write_parquet(out / "top.parquet", top.astype({"relation": str}))
    write_parquet(out / "categories.parquet", cats.astype({"model": str}))
    save_figure(plot_categories(cats, f"Role-play queries: categories of the top-{k} sequences"),
                out / "roleplay_categories.png")  # fmt: skip
    save_figure(plot_relation_shares(rel, f"Role-play queries: top-{k} sequences by relation"),
                out / "roleplay_relations.png")  # fmt: skip
    related = {m: v.get("related") for m, v in _share_dict(rel, "relation").items()}
    if not _related_possible(ctx, queries):
        related = {}
        metrics["related_skipped"] = D.NO_RELATED
    metrics.update(
        figure="roleplay_categories.png",
        categories=_share_dict(cats, "category"),
        related_share=[related.get(m) for m in models],
        related_increases=D.increasing([related.get(m, np.nan) for m in models]),
    )
    return _finish(ctx, out, "roleplay", metrics)


def crosslingual(ctx: StageContext) -> dict[str, Any]:
    """Inputs: scores, queries, corpus. Figure ``crosslingual.png``; ``pairs.parquet``, ``ratios.parquet``."""
    from llm_influence.studies.crosslingual import (
        crosslingual_ratios,
        crosslingual_table,
        plot_crosslingual,
    )

    cfg = _settings(ctx, "crosslingual")
    out = _out(ctx)
    models = _models(ctx)
    queries = read_queries(ctx.input["queries"])
    manifest = read_manifest(ctx.input["corpus"]) if ctx.input.get("corpus") else None
    k = int(cfg.get("top_k", 10))
    table = crosslingual_table(D.scores_frame(_scores(ctx)), queries, manifest, k=k,
                               source_language=str(cfg.get("source_language", "en")))  # fmt: skip
    metrics: dict[str, Any] = {"top_k": k}
    if table.empty:
        return _skip(ctx, out, "crosslingual", metrics,
                     "no translated queries (translation_of) in the score tables", ["crosslingual.png"])  # fmt: skip
    ratios = crosslingual_ratios(table)
    write_parquet(out / "pairs.parquet", table)
    write_parquet(out / "ratios.parquet", ratios)
    save_figure(plot_crosslingual(table, f"Top-{k} English sequences scored on translated queries"),
                out / "crosslingual.png")  # fmt: skip
    per_model = ratios.groupby("model")["ratio"].mean()
    metrics.update(
        figure="crosslingual.png",
        ratio=[float(per_model.get(m, np.nan)) for m in models],
        ratio_by_language={
            str(m): {
                str(lang): float(r) for lang, r in g.groupby("language")["ratio"].mean().items()
            }
            for m, g in ratios.groupby("model")
        },
        ratio_increases=D.increasing([per_model.get(m, np.nan) for m in models]),
        n_pairs=int(ratios[["query", "translation"]].drop_duplicates().shape[0]),
    )
    return _finish(ctx, out, "crosslingual", metrics)


def orderflip(ctx: StageContext) -> dict[str, Any]:
    """Inputs: scores, queries, corpus. Figure ``orderflip.png``; ``docs.parquet``, ``means.parquet``."""
    from llm_influence.studies.orderflip import (
        flip_ratios,
        order_conditions,
        orderflip_means,
        orderflip_table,
        plot_orderflip,
    )

    cfg = _settings(ctx, "orderflip")
    out = _out(ctx)
    models = _models(ctx)
    queries = _queries_with(
        read_queries(ctx.input["queries"]), str(cfg.get("tag", "synthetic-order"))
    )
    manifest = read_manifest(ctx.input["corpus"])
    facts = order_conditions(queries, manifest)
    metrics: dict[str, Any] = {"queries": sorted(facts)}
    if not facts:
        return _skip(ctx, out, "orderflip", metrics, "no synthetic-order queries with known facts",
                     ["orderflip.png"])  # fmt: skip
    scores = _restrict(D.scores_frame(_scores(ctx)), facts)
    table = orderflip_table(scores, facts)
    means = orderflip_means(table, models)
    ratios = flip_ratios(means).set_index("model")
    write_parquet(out / "docs.parquet", table.astype({"condition": str}))
    write_parquet(out / "means.parquet", means.astype({"model": str, "condition": str}))
    save_figure(plot_orderflip(table, "Influence of fact documents by word order", models=models),
                out / "orderflip.png")  # fmt: skip
    metrics.update(
        figure="orderflip.png",
        means={
            str(m): {str(c): float(v) for c, v in zip(g["condition"], g["mean"])}
            for m, g in means.groupby("model", observed=False)
        },  # fmt: skip
        flipped_over_forward=[float(ratios["flipped_over_forward"].get(m, np.nan)) for m in models],
        norelation_over_forward=[
            float(ratios["norelation_over_forward"].get(m, np.nan)) for m in models
        ],
    )
    return _finish(ctx, out, "orderflip", metrics)


def layers(ctx: StageContext) -> dict[str, Any]:
    """Inputs: scores (with per-layer scores), queries, corpus. Figures ``layers_{model}.png``."""
    from llm_influence.studies.layers import (
        THIRDS,
        centre_of_mass,
        layer_profiles,
        plot_layers,
        rerank_by_thirds,
        rerank_overlap,
    )

    cfg = _settings(ctx, "layers")
    out = _out(ctx)
    models = _models(ctx)
    tables = _scores(ctx, with_layers=True)
    queries = read_queries(ctx.input["queries"])
    kinds = {str(n): D.query_kind(t) for n, t in zip(queries["name"], queries["tags"])}
    k = int(cfg.get("top_k", 50))
    rk = int(cfg.get("rerank_top_k", 10))
    profiles = pd.concat([layer_profiles(m, t, k) for m, t in tables.items()], ignore_index=True)
    centres = centre_of_mass(profiles)
    centres["kind"] = centres["query"].map(kinds).fillna("other")
    reranked = pd.concat([rerank_by_thirds(m, t, rk) for m, t in tables.items()], ignore_index=True)
    overlap = rerank_overlap(reranked)
    classified = _classify(ctx, reranked, queries) if ctx.input.get("corpus") else None
    write_parquet(out / "profiles.parquet", profiles)
    write_parquet(out / "centres.parquet", centres)
    write_parquet(
        out / "rerank.parquet",
        reranked if classified is None else classified.astype({"relation": str}),
    )
    for m in models:
        fig = plot_layers(profiles[profiles["model"] == m], kinds,
                          f"Layer-wise influence of the top-{k} sequences, model {m}", order=D.KINDS)  # fmt: skip
        save_figure(fig, out / f"layers_{m}.png")
    per_model = {}
    for m in models:
        c = centres[centres["model"] == m]
        entry: dict[str, Any] = {
            "figure": f"layers_{m}.png",
            "centre_by_kind": {
                str(kd): float(v) for kd, v in c.groupby("kind")["centre"].mean().items()
            },
            "overlap_by_third": {
                t: float(
                    overlap[(overlap["model"] == m) & (overlap["third"] == t)]["overlap"].mean()
                )
                for t in THIRDS
            },
        }
        if classified is not None:
            cm = classified[classified["model"] == m]
            entry["related_by_third"] = {
                t: float((cm[cm["third"] == t]["relation"] == "related").mean())
                for t in ("all", *THIRDS)
            }
        per_model[m] = entry
    return _finish(ctx, out, "layers", {"top_k": k, "rerank_top_k": rk, "per_model": per_model})


def tokens(ctx: StageContext) -> dict[str, Any]:
    """Inputs: scores (``tokens.parquet`` of each table). Outputs ``tokens_{model}.html``/``.png``."""
    from llm_influence.studies.tokens import (
        plot_tokens,
        render_tokens_html,
        select_sequences,
        token_concentration,
    )

    cfg = _settings(ctx, "tokens")
    out = _out(ctx)
    models = _models(ctx)
    dirs = table_dirs(ctx.input["scores"])
    per_model = {}
    for m, d in zip(models, dirs):
        tok = read_tokens(d)
        tok.insert(0, "model", m)
        qs = list(dict.fromkeys(tok["query"]))[: int(cfg.get("max_queries", 12))]
        shown = select_sequences(tok[tok["query"].isin(qs)], int(cfg.get("max_sequences", 3)),
                                 int(cfg.get("max_tokens", 64)))  # fmt: skip
        write_text(
            out / f"tokens_{m}.html", render_tokens_html(shown, f"Token-wise influence, model {m}")
        )
        save_figure(plot_tokens(shown, f"Token-wise influence of the top sequences, model {m}"),
                    out / f"tokens_{m}.png")  # fmt: skip
        conc = token_concentration(tok)
        write_parquet(out / f"concentration_{m}.parquet", conc)
        per_model[m] = {"figure": f"tokens_{m}.png", "html": f"tokens_{m}.html",
                        "top10pct_token_share_mean": float(conc["top_share"].mean())}  # fmt: skip
    return _finish(ctx, out, "tokens", {"per_model": per_model})


def memorisation(ctx: StageContext) -> dict[str, Any]:
    """Inputs: scores, queries, corpus. Figure ``memorisation.png``; ``top.parquet``."""
    from llm_influence.studies.memorisation import (
        memorisation_shares,
        memorisation_table,
        plot_memorisation,
    )

    cfg = _settings(ctx, "memorisation")
    out = _out(ctx)
    models = _models(ctx)
    queries = _queries_with(read_queries(ctx.input["queries"]), str(cfg.get("tag", "memorisation")))
    k = int(cfg.get("top_k", 10))
    metrics: dict[str, Any] = {"top_k": k, "queries": list(queries["name"])}
    if len(queries) == 0:
        return _skip(
            ctx, out, "memorisation", metrics, "no memorisation queries", ["memorisation.png"]
        )
    docs = read_documents(ctx.input["corpus"])
    top = D.top_documents(_restrict(D.scores_frame(_scores(ctx)), queries["name"]), k)
    table = memorisation_table(top, queries, docs)
    shares = memorisation_shares(table, models)
    write_parquet(out / "top.parquet", table)
    save_figure(plot_memorisation(shares, f"Memorised passages among the top-{k} sequences"),
                out / "memorisation.png")  # fmt: skip
    s = shares.set_index("model")
    metrics.update(
        figure="memorisation.png",
        query_share=[float(s["query_share"].get(m, np.nan)) for m in models],
        sequence_share=[float(s["sequence_share"].get(m, np.nan)) for m in models],
    )
    return _finish(ctx, out, "memorisation", metrics)


STUDIES: dict[str, Callable[[StageContext], dict[str, Any]]] = {
    "sparsity": sparsity,
    "scale": scale,
    "crosslingual": crosslingual,
    "roleplay": roleplay,
    "orderflip": orderflip,
    "layers": layers,
    "tokens": tokens,
    "memorisation": memorisation,
}


# ---------------------------------------------------------------------------------------- summary


def summary(ctx: StageContext) -> dict[str, Any]:
    """Inputs: ``studies`` (list of ``results/studies/{study}`` dirs; name = dir name) or one named
    input per study. Output ``summary``: ``results/summary.md`` (file)."""
    from llm_influence.studies.summary import build_summary, render_markdown

    dirs: dict[str, Path] = {}
    if "studies" in ctx.input:
        raw = ctx.input["studies"]
        for d in [raw] if isinstance(raw, (str, Path)) else raw:
            dirs[Path(d).name] = Path(d)
    for name in STUDIES:
        if name in ctx.input:
            dirs[name] = Path(ctx.input[name])
    metrics = {n: m for n, d in dirs.items() if (m := read_metrics(d)) is not None}
    out = Path(ctx.output["summary"])
    rows = build_summary(metrics, _models(ctx), ctx.section("report"),
                         figure_root=str(ctx.section("report").get("figure_root", "results/studies")))  # fmt: skip
    write_text(out, render_markdown(rows, _models(ctx)))
    verdicts = rows["verdict"].value_counts().to_dict()
    return _clean({"rows": int(len(rows)), "verdicts": verdicts})
