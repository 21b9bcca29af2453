"""The query side of one shard job, before and after issue 10's eigenbasis compression, alternated
in one process (the machine's load moves by minutes; adjacent timings are what compare).

    python benchmarks/bench_query_groups.py --arch gpt_neox --repeat 2

``before`` = query gradients, the dense EK-FAC solve ``Factors.ihvp`` and the float64-Gram rank-32
SVD of both groups (``ekfac``, ``graddot``), as ``build_query_groups`` did up to commit f8fe77c;
``after`` = ``build_query_groups`` now (solve kept in the eigenbasis, batched rotations, only the
rank-r factors rotated back). Each timing is divided by the mean of the forward+backward baselines
before and after it (over ``--baseline-batches`` training batches, scaled to ``--train-seqs``).
Also printed: the largest difference of the two versions' scores (totals over the training
sequences of the baselines, relative to the largest score) and whether the top-10 agree.
"""

from __future__ import annotations

import argparse
import os
import time

import bench_influence as B
import torch


def before(model, factors, qb, cfg):
    from llm_influence.influence import query_gradients
    from llm_influence.influence.low_rank import low_rank
    from llm_influence.influence.preconditioned import PreconditionedQueries

    grads = query_gradients(model, factors, qb, cfg)
    fac = factors.to("cpu", torch.float32)
    out = {}
    for name, mats in (
        ("ekfac", {m: fac.ihvp(m, g) for m, g in grads.items()}),
        ("graddot", grads),
    ):
        q = PreconditionedQueries(list(factors.modules), list(factors.infos),
                                  next(iter(grads.values())).shape[0], cfg.rank,
                                  fingerprint=factors.fingerprint, strategy=name)  # fmt: skip
        for m, p in mats.items():
            q.u[m], q.v[m] = low_rank(p, cfg.rank)
        out[name] = q
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", choices=["llama", "gpt_neox"], default="llama")
    ap.add_argument("--queries", type=int, default=64)
    ap.add_argument("--fit-seqs", type=int, default=128)
    ap.add_argument("--train-seqs", type=int, default=1024)
    ap.add_argument("--baseline-batches", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    from llm_influence.influence import (
        FitConfig,
        build_query_groups,
        fit_factors,
        make_batches,
        score_groups,
    )

    torch.set_num_threads(1)
    model = B.build_model(args.arch, 128, 512, 1000, 64)
    fit_b = make_batches(B.data(args.fit_seqs, 64, 1000, 1), 32)
    train_b = make_batches(B.data(args.train_seqs, 64, 1000, 2), 32)
    qb = make_batches(B.data(args.queries, 64, 1000, 3 + args.queries, prompt=32), args.queries)
    factors = fit_factors(model, fit_b, FitConfig(batch_size=32, progress=False))
    cfg = B.stage_config(32, "cpu")
    base = B.Baseline(model, train_b, args.baseline_batches)
    impls = {"before": lambda: before(model, factors, qb, cfg),
             "after": lambda: build_query_groups(model, factors, qb, cfg)}  # fmt: skip
    groups = {}
    for rep in range(args.repeat):
        for name, fn in impls.items():
            b0 = base()
            t = time.perf_counter()
            groups[name] = fn()
            s = time.perf_counter() - t
            b = (b0 + base()) / 2
            print(f"{args.arch} Q={args.queries} {name:6s} rep {rep}: {s:.2f}s, fwd+bwd {b:.2f}s,"
                  f" ratio {s / b:.3f}", flush=True)  # fmt: skip
    sub = train_b[: args.baseline_batches]
    out = {k: score_groups(model, factors, g, sub, cfg) for k, g in groups.items()}
    for grp in ("ekfac", "graddot"):
        a, b = out["before"][grp].total, out["after"][grp].total
        print(f"{grp}: max |after - before| / max |before| = "
              f"{float((a - b).abs().max() / a.abs().max()):.2e}")  # fmt: skip
    same = torch.equal(out["before"]["ekfac"].top.index, out["after"]["ekfac"].top.index)
    print(f"top-10 identical: {same}; load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
