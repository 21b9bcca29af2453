"""Stage entry: ``validation_study(ctx)`` (paper Fig. 3 and 6-7 kind).

ctx.input (all optional): ``model`` (dir, save_pretrained of the smallest workflow model),
``tokenized`` (dir with train.safetensors), ``queries`` (dir with queries.safetensors). When all
three are given (and ``use_workflow_model``), the rank-r study runs on that model; the estimator
comparison always uses the in-process tiny LM (the exact GNH has N·T·V rows: with the workflow's
vocabulary of thousands of tokens it is out of reach, see docs/validation.md).
ctx.output: ``study`` (directory): correlations.csv, rank_correlation.csv, estimators.png,
ekfac_vs_exact_lm.png, rank_correlation.png, metrics.json.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch

from llm_influence.influence.comparison import parse_refined
from llm_influence.studies.figures import save_figure
from llm_influence.utils.io import atomic_path, write_json
from llm_influence.workflow.context import StageContext

from .compare import correlation_table, max_rank, rank_study, task_scores, tracked_params
from .config import LM_TASKS, ValidationConfig, refined_name
from .figures import ekfac_scatter, estimator_bars, rank_curve, refine_curve
from .tasks import Task, build_task


def _workflow_lm(ctx: StageContext, cfg: ValidationConfig) -> Task | None:
    names = ("model", "tokenized", "queries")
    if not cfg.use_workflow_model or any(not ctx.input.get(k) for k in names):
        return None
    from llm_influence.artifacts.queries import read_query_tensors
    from llm_influence.artifacts.tokenized import read_split
    from llm_influence.influence import find_tracked_modules
    from llm_influence.models.loading import load_model

    model = load_model(Path(ctx.input["model"]), device="cpu", dtype="float32")
    train = read_split(ctx.input["tokenized"], "train")
    qs = read_query_tensors(ctx.input["queries"])
    k = min(cfg.rank_sequences, train["input_ids"].shape[0])
    ids, mask = train["input_ids"][:k], train["attention_mask"][:k]
    T = int(mask.sum(1).max())
    ids, mask = ids[:, :T], mask[:, :T]
    labels = ids.masked_fill(mask == 0, -100)
    keep = (qs["labels"][:, 1:] != -100).any(1)
    qb = {key: qs[key][keep] for key in ("input_ids", "attention_mask", "labels")}
    Tq = int(qb["attention_mask"].sum(1).max())
    qb = {key: v[:, :Tq] for key, v in qb.items()}
    train_b = [
        {
            "input_ids": ids[i : i + 8],
            "attention_mask": mask[i : i + 8],
            "labels": labels[i : i + 8],
        }
        for i in range(0, k, 8)
    ]
    query_b = [
        {key: v[i : i + 8] for key, v in qb.items()} for i in range(0, qb["input_ids"].shape[0], 8)
    ]
    modules = find_tracked_modules(model)
    return Task("workflow_lm", "ce", model, modules, train_b, query_b,
                info={"n_train": k, "n_queries": int(keep.sum()), "source": str(ctx.input["model"])})  # fmt: skip


def _summary(table, rank_table) -> dict[str, Any]:
    piv = table.pivot(index="task", columns="estimator", values="pearson")
    out: dict[str, Any] = {}
    for est in ("ekfac", "kfac", "gradient_dot", "lissa", "block"):
        if "lm" in piv.index:
            out[f"{est}_pearson_lm"] = float(piv.loc["lm", est])
    out["ekfac_beats_gradient_dot"] = bool((piv["ekfac"] > piv["gradient_dot"]).all())
    out.update(_refine_summary(piv))
    ranks = rank_table["rank"].tolist()
    r = 32 if 32 in ranks else max(ranks)
    out["rank32_pearson"] = float(rank_table.loc[rank_table["rank"] == r, "pearson"].iloc[0])
    out["rank32_rank_used"] = int(r)
    out["rank32_effective_rank"] = int(
        rank_table.loc[rank_table["rank"] == r, "effective_rank"].iloc[0]
    )
    return out


def _refine_summary(piv) -> dict[str, Any]:
    """Refined EK-FAC (the most PCG steps run) against EK-FAC, per LM task and product kind: Pearson,
    the share of EK-FAC's gap to exact that it closes, and whether it beats the per-module block."""
    refined = [c for c in piv.columns if parse_refined(c) is not None]
    if not refined:
        return {}
    steps = max(parse_refined(c)[0] for c in refined)
    out: dict[str, Any] = {"refine_steps_reported": steps, "refine_tasks": []}
    closer = []
    for task in [t for t in LM_TASKS if t in piv.index]:
        out["refine_tasks"].append(task)
        ek = float(piv.loc[task, "ekfac"])
        out[f"ekfac_pearson_{task}"] = ek
        for products in ("gnh", "sampled"):
            col = refined_name(steps, products)
            if col not in piv.columns:
                continue
            p = float(piv.loc[task, col])
            out[f"{col}_pearson_{task}"] = p
            out[f"{col}_gap_closed_{task}"] = (p - ek) / (1 - ek) if ek < 1 else math.nan
            out[f"{col}_beats_block_{task}"] = bool(p > float(piv.loc[task, "block"]))
            if products == "gnh":
                closer.append(p > ek)
    out["refined_closer_than_ekfac"] = bool(closer) and all(closer)
    return out


def _run_task(name: str, cfg: ValidationConfig, seed: int):
    """One validation task: (task, scores by estimator, correlation table, its metrics)."""
    t = time.perf_counter()
    task = build_task(name, cfg, seed)
    t_build = time.perf_counter() - t
    diagnostics: dict[str, Any] = {}
    scores, secs = task_scores(task, cfg, seed=seed, diagnostics=diagnostics)
    tab = correlation_table(name, scores, secs)
    metrics = {
        "pearson": {r.estimator: float(r.pearson) for r in tab.itertuples()},
        "spearman": {r.estimator: float(r.spearman) for r in tab.itertuples()},
        "seconds": {r.estimator: float(r.seconds) for r in tab.itertuples()},
        "refine_residuals": diagnostics,
        "tracked_params": tracked_params(task.model, task.modules),
        "train_seconds": t_build,
        **{k: v for k, v in task.info.items()},
    }
    return task, scores, tab, metrics


def _write_tables_and_figures(out, table, rank_table, rank_model, full, lm_scores, lm_pearson):
    """correlations.csv, rank_correlation.csv and the figures of the study directory."""
    with atomic_path(out / "correlations.csv") as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    with atomic_path(out / "rank_correlation.csv") as tmp:
        rank_table.assign(model=rank_model).to_csv(tmp, index=False, float_format="%.6g")
    save_figure(estimator_bars(table), out / "estimators.png")
    if table["estimator"].str.startswith("ekfac_pcg").any():
        save_figure(refine_curve(table), out / "refine.png")
    if lm_scores is not None:
        save_figure(
            ekfac_scatter(lm_scores["exact"].numpy(), lm_scores["ekfac"].numpy(), lm_pearson),
            out / "ekfac_vs_exact_lm.png",
        )
    save_figure(rank_curve(rank_table, full), out / "rank_correlation.png")


def validation_study(ctx: StageContext) -> dict[str, Any]:
    t_start = time.perf_counter()
    cfg = ValidationConfig.from_config(ctx.config["studies"]["validation"])
    out = Path(ctx.output["study"])
    out.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is faster than two contending ones
    try:
        tables, per_task, lm_task, lm_scores = [], {}, None, None
        for name in cfg.tasks:
            task, scores, tab, per_task[name] = _run_task(name, cfg, ctx.seed)
            tables.append(tab)
            ctx.logger.info("validation %s: %s", name, per_task[name]["pearson"])
            if name == "lm":
                lm_task, lm_scores = task, scores
        import pandas as pd

        table = pd.concat(tables, ignore_index=True)
        rank_task = _workflow_lm(ctx, cfg)
        if rank_task is None:
            rank_task = lm_task if lm_task is not None else build_task("lm", cfg, ctx.seed)
        rank_table = rank_study(rank_task.model, rank_task.modules, rank_task.train_batches, rank_task.query_batches,
                                cfg.ranks, damping_scale=cfg.damping_scale, seed=ctx.seed)  # fmt: skip
        full = max_rank(rank_task.model, rank_task.modules)

        lm_pearson = per_task["lm"]["pearson"]["ekfac"] if lm_scores is not None else None
        _write_tables_and_figures(
            out, table, rank_table, rank_task.name, full, lm_scores, lm_pearson
        )

        summary = _summary(table, rank_table)
        metrics = {
            "tasks": per_task,
            "rank_study": {
                "model": rank_task.name,
                "full_rank": full,
                "modules": list(rank_task.modules),
                "pearson": {str(r.rank): float(r.pearson) for r in rank_table.itertuples()},
            },  # fmt: skip
            "config": cfg.to_dict(),
            "seconds": time.perf_counter() - t_start,
            **summary,
        }
        write_json(out / "metrics.json", metrics)
    finally:
        torch.set_num_threads(threads)
    return {
        k: v
        for k, v in metrics.items()
        if not isinstance(v, dict)
        and not math.isnan(float(v) if isinstance(v, (int, float)) else 0.0)
    }
