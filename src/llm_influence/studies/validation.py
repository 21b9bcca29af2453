"""Claims of the validation study (exact damped Gauss-Newton influence as ground truth).

The study itself has its own rule and package (:mod:`llm_influence.validation`, which imports
torch); only its summary rows live here, so that the summary stays torch-free.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from llm_influence.studies.claims import (
    INCONCLUSIVE,
    VALIDITY,
    Claim,
    Judgement,
    SummaryConfig,
    fmt,
    num,
    verdict_of,
)


def _ekfac(va: dict[str, Any], cfg: SummaryConfig) -> Judgement:
    ek, gd = num(va.get("ekfac_pearson_lm")), num(va.get("gradient_dot_pearson_lm"))
    li, kf = num(va.get("lissa_pearson_lm")), num(va.get("kfac_pearson_lm"))
    beats = va.get("ekfac_beats_gradient_dot")
    verdict = verdict_of(bool(beats), beats is not None)
    ours = (f"tiny LM, Pearson with exact damped GNH: EK-FAC {fmt(ek)}, KFAC {fmt(kf)}, "
            f"LiSSA {fmt(li)}, gradient dot {fmt(gd)}")  # fmt: skip
    return Judgement(ours, verdict, "estimators.png")


def _rank32(va: dict[str, Any], cfg: SummaryConfig) -> Judgement:
    r32 = num(va.get("rank32_pearson"))
    verdict = verdict_of(r32 >= 0.99, np.isfinite(r32))
    ours = f"Pearson {fmt(r32)} (rank {va.get('rank32_rank_used', 32)})"
    return Judgement(ours, verdict, "rank_correlation.png")


def _refined(va: dict[str, Any], cfg: SummaryConfig) -> Judgement:
    steps, tasks = va.get("refine_steps_reported"), va.get("refine_tasks") or []
    if steps is None or not tasks:
        return Judgement("no refined estimator in the validation study", INCONCLUSIVE)
    parts = []
    for task in tasks:
        row = [f"EK-FAC {fmt(va[f'ekfac_pearson_{task}'])}"]
        for products in ("gnh", "sampled"):
            key = f"ekfac_pcg{steps}_{products}"
            if f"{key}_pearson_{task}" in va:
                row.append(f"PCG-{steps} {products} {fmt(va[f'{key}_pearson_{task}'])} "
                           f"(gap closed {fmt(va[f'{key}_gap_closed_{task}'], '.0%')})")  # fmt: skip
        parts.append(f"{task}: " + ", ".join(row))
    verdict = verdict_of(bool(va.get("refined_closer_than_ekfac")))
    return Judgement("Pearson with exact damped GNH — " + "; ".join(parts), verdict, "refine.png")


CLAIMS = [
    Claim("validation.ekfac", "EK-FAC approximates the exact influence far better than the gradient dot product (LiSSA ≈ EK-FAC)",
          "EK-FAC ≈ LiSSA ≫ gradient dot (Fig. 6–7)",
          lambda c: "holds if EK-FAC beats the gradient dot product on every validation task", _ekfac),
    Claim("validation.rank32", "Rank-32 query batching keeps the scores of full-rank queries",
          "Pearson 0.995 (shutdown)", lambda c: "holds if Pearson ≥ 0.99", _rank32),
    Claim("validation.refined", "A few EK-FAC-preconditioned CG steps on the Gauss-Newton operator bring the IHVPs closer to the exact damped GNH than EK-FAC",
          "not in the paper (EK-FAC only)",
          lambda c: "holds if PCG with exact GN-vector products beats EK-FAC's Pearson on every LM task",
          _refined, kind=VALIDITY),
]  # fmt: skip
