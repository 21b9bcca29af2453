"""``results/summary.md``: one row per paper claim, the paper's number, ours and a verdict.

Every verdict is computed from the studies' ``metrics.json`` by the rule written in the row (the
thresholds come from the ``report`` config section); missing studies or too few queries give
*inconclusive*, never a default "holds". The largest model is the last of ``config["models"]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from llm_influence.studies.data import increasing

HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive"

DEFAULTS: dict[str, Any] = {
    "min_queries": 3,
    "alpha_range": [2.0, 4.3],
    "top_share_range": [0.12, 0.52],
    "max_rejected_share": 0.5,
    "rare_max": 0.01,
    "near_zero": 0.2,
    "flip_max": 0.1,
    "flip_fail": 0.5,
    "hit_min": 0.8,
    "hit_fail": 0.5,
    "min_rise": 0.05,
}


def _f(x: Any, fmt: str = ".3g") -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "n/a"
    if isinstance(x, (list, tuple)):
        return "[" + ", ".join(_f(v, fmt) for v in x) + "]"
    return format(float(x), fmt)


def _per_size(models: Sequence[str], values: Sequence[Any] | None) -> str:
    if not values:
        return "n/a"
    return ", ".join(f"{m}: {_f(v)}" for m, v in zip(models, values))


def _num(x: Any) -> float:
    try:
        return float(x) if x is not None else float("nan")
    except (TypeError, ValueError):
        return float("nan")


def _rises(values: Sequence[Any] | None, min_rise: float) -> str:
    """'Rises with model size': holds if :func:`increasing` and last − first ≥ ``min_rise``;
    does not hold if last ≤ first; inconclusive otherwise (small or non-monotone rise, < 2 sizes)."""
    v = [_num(x) for x in (values or [])]
    inc = increasing(v)
    if inc is None:
        return INCONCLUSIVE
    finite = [x for x in v if np.isfinite(x)]
    if finite[-1] <= finite[0]:
        return FAILS
    return HOLDS if inc and finite[-1] - finite[0] >= min_rise else INCONCLUSIVE


def build_summary(
    metrics: Mapping[str, Mapping[str, Any]],
    models: Sequence[str],
    cfg: Mapping[str, Any] | None = None,
    figure_root: str = "results/studies",
) -> pd.DataFrame:
    """Rows: id, claim, paper, ours, verdict, rule, figure."""
    c = {**DEFAULTS, **(cfg or {})}
    largest = models[-1]
    rows: list[dict[str, str]] = []

    def fig(study: str, name: str | None) -> str:
        return f"{figure_root}/{study}/{name}" if name else "—"

    def add(rid, claim, paper, ours, verdict, rule, figure):
        rows.append(dict(id=rid, claim=claim, paper=paper, ours=ours, verdict=verdict, rule=rule,
                         figure=figure))  # fmt: skip

    missing = "study not run"
    # --- sparsity
    sp = metrics.get("sparsity", {}).get("per_model", {}).get(largest)
    lo, hi = c["alpha_range"]
    if sp:
        n_fit = int(sp.get("n_fitted") or 0)
        a = _num(sp.get("alpha_median"))
        v = (
            INCONCLUSIVE
            if n_fit < c["min_queries"] or not np.isfinite(a)
            else (HOLDS if lo <= a <= hi else FAILS)
        )
        ours = f"{largest}: median α = {_f(a)} (range {_f(sp.get('alpha_min'))}–{_f(sp.get('alpha_max'))}, {n_fit} queries fitted)"
        f_sp = fig("sparsity", sp.get("figure"))
    else:
        v, ours, f_sp = INCONCLUSIVE, missing, "—"
    add("sparsity.alpha", "Influence has a power-law tail; exponent α per query",
        "α ≈ 2.0–4.3 over 8 queries", ours, v,
        f"holds if the median α of the largest model lies in [{lo}, {hi}]; inconclusive with fewer than {c['min_queries']} fitted queries", f_sp)  # fmt: skip
    if sp:
        n_t = int(sp.get("n_gof_tested") or 0)
        n_r = int(sp.get("n_rejected") or 0)
        share = n_r / n_t if n_t else float("nan")
        v = (
            INCONCLUSIVE
            if n_t < c["min_queries"]
            else (HOLDS if share <= c["max_rejected_share"] else FAILS)
        )
        ours = (f"{largest}: power law rejected (bootstrap KS p < {_f(metrics['sparsity'].get('gof_threshold'))}) for {n_r} of {n_t}; "
                f"LR favours power law over exponential for {sp.get('n_pl_over_exp')}, exponential for {sp.get('n_exp_over_pl')}; "
                f"over log-normal {sp.get('n_pl_over_lognormal')}, log-normal {sp.get('n_lognormal_over_pl')}")  # fmt: skip
    else:
        v, ours = INCONCLUSIVE, missing
    add("sparsity.gof", "The power law is a plausible fit (Clauset–Shalizi–Newman KS test)",
        "rejected for 2 of 8 queries", ours, v,
        f"holds if the power law is rejected for at most {c['max_rejected_share']:.0%} of the tested queries", f_sp)  # fmt: skip
    tlo, thi = c["top_share_range"]
    if sp:
        t = _num(sp.get("top_share_median"))
        v = INCONCLUSIVE if not np.isfinite(t) else (HOLDS if tlo <= t <= thi else FAILS)
        ours = f"{largest}: median {_f(t)} (range {_f(sp.get('top_share_min'))}–{_f(sp.get('top_share_max'))})"
    else:
        v, ours = INCONCLUSIVE, missing
    add("sparsity.top1", "The top 1 % of sequences carry a large share of the positive influence",
        "12–52 %", ours, v, f"holds if the median share of the largest model lies in [{tlo}, {thi}]", f_sp)  # fmt: skip
    if sp:
        r = _num(sp.get("frac_above_threshold_mean"))
        v = INCONCLUSIVE if not np.isfinite(r) else (HOLDS if r <= c["rare_max"] else FAILS)
        ours = f"{largest}: {_f(r)} of sequences per query on average"
    else:
        v, ours = INCONCLUSIVE, missing
    add("sparsity.rare", "Influences above 0.1 are rare", "rare (qualitative)", ours, v,
        f"holds if at most {c['rare_max']:.0%} of sequences exceed 0.1", f_sp)  # fmt: skip

    # --- scale
    sc = metrics.get("scale")
    if sc:
        add("scale.related", "Small models' top sequences share tokens with the query, large models' are thematically related",
            "token overlap at 810M → related at 52B (qualitative)",
            f"related share {_per_size(models, sc.get('related_share'))}; token-overlap-only share {_per_size(models, sc.get('token_overlap_share'))}"
            + (f" ({sc['related_skipped']})" if sc.get("related_skipped") else ""),
            _rises(sc.get("related_share"), c["min_rise"]),
            f"holds if the related share rises with size by ≥ {c['min_rise']} (no drop beyond 10 % of the spread); does not hold if the largest ≤ the smallest",
            fig("scale", sc.get("figure")))  # fmt: skip
        hits = [_num(x) for x in sc.get("fact_hit_share") or []]
        fin = [h for h in hits if np.isfinite(h)]
        v = INCONCLUSIVE if not fin or sc.get("n_fact_queries", 0) == 0 else (
            HOLDS if min(fin) >= c["hit_min"] else FAILS if min(fin) < c["hit_fail"] else INCONCLUSIVE)  # fmt: skip
        add("scale.facts", f"Simple facts: a document stating the answer is in the top {sc.get('fact_top_k')} at every size",
            "at every size (810M–52B)", f"share of {sc.get('n_fact_queries')} fact queries: {_per_size(models, hits)}", v,
            f"holds if the share is ≥ {c['hit_min']} at every size; does not hold if < {c['hit_fail']} at some size",
            fig("scale", sc.get("figure")))  # fmt: skip
        ret = sc.get("retrieval", {})
        mrr = [_num(ret.get(m, {}).get("mrr")) for m in models]
        rec = [_num(ret.get(m, {}).get("recall@10")) for m in models]
        v = (
            INCONCLUSIVE
            if not np.isfinite(mrr[-1])
            else (HOLDS if mrr[-1] >= 0.5 else FAILS if mrr[-1] < 0.1 else INCONCLUSIVE)
        )
        main_method = ret.get(largest, {}).get("method")
        others = "; ".join(
            f"{r.get('method')} ({r.get('model')}): recall@10 {_f(r.get('recall@10'))}, MRR {_f(r.get('mrr'))}"
            for r in sc.get("retrieval_by_method", []) if r.get("method") != main_method
        )  # fmt: skip
        ours = f"{main_method or 'influence'}: recall@10 {_per_size(models, rec)}; MRR {_per_size(models, mrr)}"
        ours += f" (baselines: {others})" if others else ""
        add("sanity.retrieval", "(sanity check, not a paper claim) on simple fact queries, the documents stating the fact rank high by influence",
            "—", ours, v,
            "holds if the largest model's MRR ≥ 0.5; does not hold if < 0.1", fig("scale", "retrieval.png"))  # fmt: skip
    else:
        for rid in ("scale.related", "scale.facts"):
            add(
                rid,
                "Scale: " + rid.split(".")[1],
                "see paper Fig. 1, 10–14",
                missing,
                INCONCLUSIVE,
                "—",
                "—",
            )

    # --- cross-lingual
    cl = metrics.get("crosslingual")
    if cl and not cl.get("skipped"):
        ratio = [_num(x) for x in cl.get("ratio") or []]
        v = _rises(ratio, c["min_rise"])
        if v == HOLDS and not (np.isfinite(ratio[0]) and abs(ratio[0]) <= c["near_zero"]):
            v = INCONCLUSIVE
        ours = f"mean translated/English influence of the English top-{cl.get('top_k')}: {_per_size(models, ratio)} ({cl.get('n_pairs')} pairs)"
        f_cl = fig("crosslingual", cl.get("figure"))
    else:
        v, ours, f_cl = INCONCLUSIVE, (cl or {}).get("skipped", missing), "—"
    add("crosslingual", "English top sequences also influence translated queries, more so for larger models",
        "near zero at 810M, rising with size", ours, v,
        f"holds if the ratio rises with size by ≥ {c['min_rise']} and |ratio| ≤ {c['near_zero']} at the smallest; does not hold if the largest ≤ the smallest", f_cl)  # fmt: skip

    # --- role-play
    rp = metrics.get("roleplay")
    if rp and not rp.get("skipped"):
        add("roleplay", "Role-play queries: large models' top sequences are thematically related (AI stories, survival, AI-risk essays)",
            "small: token overlap; large: related (qualitative)",
            f"related share of the top-{rp.get('top_k')}: {_per_size(models, rp.get('related_share'))}"
            + (f" ({rp['related_skipped']})" if rp.get("related_skipped") else ""),
            _rises(rp.get("related_share"), c["min_rise"]), f"holds if the related share rises with size by ≥ {c['min_rise']}; does not hold if the largest ≤ the smallest",
            fig("roleplay", rp.get("figure")))  # fmt: skip
    else:
        add("roleplay", "Role-play queries: large models' top sequences are thematically related", "qualitative",
            (rp or {}).get("skipped", missing), INCONCLUSIVE, "—", "—")  # fmt: skip

    # --- order flip
    of = metrics.get("orderflip")
    if of and not of.get("skipped"):
        fl = [_num(x) for x in of.get("flipped_over_forward") or []]
        nr = [_num(x) for x in of.get("norelation_over_forward") or []]
        fwd = _num(of.get("means", {}).get(largest, {}).get("query_order"))
        r = fl[-1] if fl else float("nan")
        if not (np.isfinite(r) and fwd > 0):
            v = INCONCLUSIVE
        else:
            v = HOLDS if abs(r) <= c["flip_max"] else FAILS if r >= c["flip_fail"] else INCONCLUSIVE
        add("orderflip.flipped", "Documents stating the fact in flipped order have near-zero influence",
            "near zero; ≥ 10× drop", f"flipped/query-order mean influence {_per_size(models, fl)}", v,
            f"largest model, query-order mean > 0: holds if |ratio| ≤ {c['flip_max']}, does not hold if ratio ≥ {c['flip_fail']}",
            fig("orderflip", of.get("figure")))  # fmt: skip
        d = abs(nr[-1] - fl[-1]) if nr and fl else float("nan")
        v = (
            INCONCLUSIVE
            if not (np.isfinite(d) and fwd > 0)
            else (HOLDS if d <= c["flip_max"] else FAILS)
        )
        add("orderflip.norelation", "Removing the relation words in flipped order changes nothing",
            "no change", f"flipped-without-relation/query-order {_per_size(models, nr)}", v,
            f"holds if the largest model's two flipped ratios differ by ≤ {c['flip_max']} (units of the query-order mean)",
            fig("orderflip", of.get("figure")))  # fmt: skip
    else:
        add("orderflip.flipped", "Flipped-order documents have near-zero influence", "≥ 10× drop",
            (of or {}).get("skipped", missing), INCONCLUSIVE, "—", "—")  # fmt: skip

    # --- layers
    la = metrics.get("layers", {}).get("per_model", {}).get(largest)
    if la:
        cen = la.get("centre_by_kind", {})
        up = [_num(cen[k]) for k in ("memorisation", "factual") if k in cen]
        mid = [_num(cen[k]) for k in ("math", "code", "translation") if k in cen]
        up, mid = [x for x in up if np.isfinite(x)], [x for x in mid if np.isfinite(x)]
        v = INCONCLUSIVE if not up or not mid else (HOLDS if np.mean(up) > np.mean(mid) else FAILS)
        ours = (
            f"{largest}: centre of mass in relative depth (0 = first, 1 = last layer) "
            + ", ".join(f"{k} {_f(x, '.2f')}" for k, x in sorted(cen.items()))
        )
        add("layers.kinds", "Memorised quotes and simple facts sit in upper layers, math/code/translation in middle layers",
            "qualitative (Fig. 17–21)", ours, v,
            "holds if the mean centre of memorisation+factual queries exceeds that of math+code+translation",
            fig("layers", la.get("figure")))  # fmt: skip
        rel = la.get("related_by_third")
        if rel:
            thirds = {t: _num(rel.get(t)) for t in ("lower", "middle", "upper")}
            fin = {t: x for t, x in thirds.items() if np.isfinite(x)}
            if len(fin) < 3 or max(fin.values()) == 0:
                v = INCONCLUSIVE
            else:
                others = [x for t, x in fin.items() if t != "middle"]
                v = HOLDS if fin["middle"] > max(others) else FAILS
            add("layers.middle", "Re-ranking by the middle third of the layers gives the most abstract (related) matches",
                "qualitative", f"{largest}: related share of the re-ranked top-k " + ", ".join(f"{t} {_f(x, '.2f')}" for t, x in thirds.items()),
                v, "holds if the middle third has the strictly highest related share", fig("layers", la.get("figure")))  # fmt: skip
    else:
        add(
            "layers.kinds",
            "Layer distribution by query kind",
            "qualitative",
            missing,
            INCONCLUSIVE,
            "—",
            "—",
        )

    # --- memorisation
    me = metrics.get("memorisation")
    if me and not me.get("skipped"):
        qs = [_num(x) for x in me.get("query_share") or []]
        last = qs[-1] if qs else float("nan")
        v = (
            INCONCLUSIVE
            if not np.isfinite(last)
            else (
                HOLDS if last >= c["hit_min"] else FAILS if last < c["hit_fail"] else INCONCLUSIVE
            )
        )
        add("memorisation", "Famous passages' top sequences contain the passage", "yes (Fig. 22)",
            f"share of passage queries with the passage in the top-{me.get('top_k')}: {_per_size(models, qs)}", v,
            f"largest model: holds if ≥ {c['hit_min']}, does not hold if < {c['hit_fail']}", fig("memorisation", me.get("figure")))  # fmt: skip
    else:
        add("memorisation", "Famous passages' top sequences contain the passage", "yes (Fig. 22)",
            (me or {}).get("skipped", missing), INCONCLUSIVE, "—", "—")  # fmt: skip
    # --- validation (exact damped Gauss-Newton influence as ground truth)
    va = metrics.get("validation")
    if va:
        ek, gd = _num(va.get("ekfac_pearson_lm")), _num(va.get("gradient_dot_pearson_lm"))
        li, kf = _num(va.get("lissa_pearson_lm")), _num(va.get("kfac_pearson_lm"))
        beats = va.get("ekfac_beats_gradient_dot")
        v = INCONCLUSIVE if beats is None else (HOLDS if beats else FAILS)
        add("validation.ekfac", "EK-FAC approximates the exact influence far better than the gradient dot product (LiSSA ≈ EK-FAC)",
            "EK-FAC ≈ LiSSA ≫ gradient dot (Fig. 6–7)",
            f"tiny LM, Pearson with exact damped GNH: EK-FAC {_f(ek)}, KFAC {_f(kf)}, LiSSA {_f(li)}, gradient dot {_f(gd)}",
            v, "holds if EK-FAC beats the gradient dot product on every validation task",
            fig("validation", "estimators.png"))  # fmt: skip
        r32 = _num(va.get("rank32_pearson"))
        add("validation.rank32", "Rank-32 query batching keeps the scores of full-rank queries",
            "Pearson 0.995 (shutdown)", f"Pearson {_f(r32)} (rank {va.get('rank32_rank_used', 32)})",
            INCONCLUSIVE if not np.isfinite(r32) else (HOLDS if r32 >= 0.99 else FAILS),
            "holds if Pearson ≥ 0.99", fig("validation", "rank_correlation.png"))  # fmt: skip
    else:
        add("validation.ekfac", "EK-FAC approximates the exact influence", "EK-FAC ≈ LiSSA ≫ gradient dot",
            missing, INCONCLUSIVE, "—", "—")  # fmt: skip
    return pd.DataFrame(rows, columns=["id", "claim", "paper", "ours", "verdict", "rule", "figure"])


def _cell(x: str) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def render_markdown(rows: pd.DataFrame, models: Sequence[str]) -> str:
    lines = [
        "# Paper claims vs this run",
        "",
        "Grosse et al. (2023), *Studying Large Language Model Generalization with Influence Functions*. "
        f"Model sizes here: {', '.join(models)} (largest = {models[-1]}). Generated by "
        "`llm_influence.studies.stage:summary` from `results/studies/*/metrics.json`; each verdict "
        "follows the rule in its row. Our models and corpus are tiny next to the paper's (810M–52B "
        "parameters), so disagreements are expected and reported as they are.",
        "",
        "| id | claim | paper | ours | verdict | rule | figure |",
        "|---|---|---|---|---|---|---|",
    ]
    for _, r in rows.iterrows():
        # links relative to results/summary.md; the text shows the repository path
        target = r["figure"].removeprefix("results/")
        fig = r["figure"] if r["figure"] == "—" else f"[{r['figure']}]({target})"
        lines.append("| " + " | ".join(_cell(x) for x in (r["id"], r["claim"], r["paper"], r["ours"],
                                                           f"**{r['verdict']}**", r["rule"], fig)) + " |")  # fmt: skip
    counts = rows["verdict"].value_counts()
    lines += ["", f"Verdicts: {counts.get(HOLDS, 0)} hold, {counts.get(FAILS, 0)} do not hold, "
              f"{counts.get(INCONCLUSIVE, 0)} inconclusive."]  # fmt: skip
    return "\n".join(lines) + "\n"
