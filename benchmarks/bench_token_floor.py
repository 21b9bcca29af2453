"""Lower bound of per-token scoring: the bare rank-r contraction vs a forward+backward pass.

Per-token scores of Q low-rank (rank r) preconditioned queries need, for every token t and tracked
module (d_in -> d_out), the products U^T g_t and V^T a_t: Q·r·(d_in + d_out) multiply-adds per token
and module, whatever the implementation (the alternatives, g_t^T (P_q a_t) or per-token gradients,
cost Q·d_in·d_out, which is more for r < d_in·d_out/(d_in + d_out)). This script times just those
GEMMs plus the reduction over r, on random data with the benchmark's shapes, next to a plain
forward+backward pass of the benchmark model over the same tokens, so the ratio is a floor for
``score`` rows of ``bench_influence.py`` (which also pay the forward and the backward to the
tracked outputs).

    python benchmarks/bench_token_floor.py --arch llama --queries 64 --rank 32
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch


def fastest(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main(argv: list[str] | None = None) -> dict:
    from bench_influence import build_model, data, fwd_bwd_seconds

    from llm_influence.influence import find_tracked_modules, make_batches
    from llm_influence.influence.tracked import module_info

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", choices=["llama", "gpt_neox"], default="llama")
    ap.add_argument("--queries", type=int, default=64)
    ap.add_argument("--rank", type=int, default=32)
    ap.add_argument("--train-seqs", type=int, default=1024)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    model = build_model(args.arch, 128, 512, 1000, args.seq_len)
    batches = make_batches(data(args.train_seqs, args.seq_len, 1000, 2), args.batch_size)
    infos = [module_info(n, model.get_submodule(n)) for n in find_tracked_modules(model)]
    n_tok, qr = args.batch_size * args.seq_len, args.queries * args.rank
    g = torch.Generator().manual_seed(0)
    mats = [
        (
            torch.randn(n_tok, i.d_in_h, generator=g),
            torch.randn(n_tok, i.d_out, generator=g),
            torch.randn(i.d_in_h, qr, generator=g),
            torch.randn(i.d_out, qr, generator=g),
        )
        for i in infos
    ]

    def contraction() -> None:
        for _ in range(len(batches)):
            for a, gr, v, u in mats:
                ((gr @ u) * (a @ v)).view(n_tok, args.queries, args.rank).sum(-1)

    fwd_bwd_seconds(model, batches[:2])  # warm-up
    base = fastest(lambda: fwd_bwd_seconds(model, batches), args.repeat)
    floor = fastest(contraction, args.repeat)
    macs = sum(qr * (i.d_in_h + i.d_out) for i in infos)
    result = {
        "arch": args.arch,
        "queries": args.queries,
        "rank": args.rank,
        "tracked_modules": len(infos),
        "contraction_macs_per_token": macs,
        "fwd_bwd_s": round(base, 4),
        "contraction_s": round(floor, 4),
        "ratio": round(floor / base, 3),
    }
    print(
        f"{args.arch}: {len(infos)} tracked modules, Q={args.queries}, r={args.rank}: "
        f"{macs / 1e6:.2f}M multiply-adds per token for the contraction; fwd+bwd {base:.2f} s, "
        f"contraction alone {floor:.2f} s = {floor / base:.2f}x (fastest of {args.repeat})"
    )
    return result


if __name__ == "__main__":
    main()
