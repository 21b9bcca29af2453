"""Influence-engine benchmark: fit and scoring cost as ratios to a plain forward+backward pass.

    python benchmarks/bench_influence.py --arch llama --json bench.json        # full (issue 3 sizes)
    python benchmarks/bench_influence.py --quick                               # smaller, for a smoke run
    python benchmarks/bench_influence.py --only-refine --repeat 1              # just the refine rows
    python benchmarks/bench_influence.py --only-stage --repeat 2 --threads 1   # stage + tfidf rows
    python benchmarks/bench_influence.py --only-memory --threads 1             # shard-job peak RSS

``stage`` rows (issue 10): what one ``score_shard`` job does by default, EK-FAC total + per-layer
scores of every training sequence, the gradient-dot baseline and per-token scores of each query's
top-10, rank 32: ``ours`` = ``build_query_groups`` + ``score_groups`` (one fused pass); ``ours_old``
= the stage before issue 10 (``iter_scores`` with per-token scores of every pair, then a second
identity-preconditioned pass); ``kronfluence`` = its pairwise scores, per-module scores, an
identity-strategy pass and per-token scores over the union of its top-10s. ``tfidf`` rows: the same
over the union of seeded random candidate sets (``--tfidf-fractions`` of the sequences per query,
drawn independently per query or shared by all), the top-k restricted to the candidates. Their
forward+backward baseline is timed next to every repetition (over ``--baseline-batches`` batches,
scaled to the whole set). Memory rows: peak RSS of one shard job per ``--memory-seqs`` N, each a fresh
subprocess, next to the size of its [Q, N] and [Q, N, M] tables.

``refine`` rows: k EK-FAC-preconditioned CG steps (``influence.refine``) for 8 and 64 queries, both
operator products, as a ratio to a forward+backward pass over the ``--refine-fit-seqs`` fit sequences
the products use (the cost is per sequence, so the ratio does not depend on how many).

Model: 2 layers, d_model 128, d_ff 512, vocab 1000, 64 tokens, random weights (seeded); 512 fit
sequences, 1024 training sequences, 8 and 64 queries. The forward+backward baseline (summed CE,
parameter gradients) is measured in the same run over the same sequences. With ``kronfluence``
importable it is run on the same model, data, damping (0.1 × mean Λ) and modules, and the
correlation of the two full-rank score tables is reported.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch


def build_model(arch: str, d: int, ff: int, vocab: int, ctx: int, seed: int = 0):
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    if arch == "llama":
        cfg = LlamaConfig(
            vocab_size=vocab,
            hidden_size=d,
            intermediate_size=ff,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
            max_position_embeddings=ctx,
            attn_implementation="sdpa",
        )
        return LlamaForCausalLM(cfg).eval()
    cfg = GPTNeoXConfig(
        vocab_size=vocab,
        hidden_size=d,
        intermediate_size=ff,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=ctx,
        attn_implementation="sdpa",
    )
    return GPTNeoXForCausalLM(cfg).eval()


def data(n: int, T: int, vocab: int, seed: int, prompt: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (n, T), generator=g)
    mask = torch.ones_like(ids)
    labels = ids.clone()
    labels[:, :prompt] = -100
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def fwd_bwd_seconds(model, batches) -> float:
    from llm_influence.influence.labels import summed_loss

    model.eval()
    t = time.perf_counter()
    for b in batches:
        model.zero_grad(set_to_none=True)
        logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
        summed_loss(logits, b["labels"][:, 1:]).backward()
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - t


def timed(fn, repeat: int = 1):
    """(result of the last call, fastest of ``repeat`` wall-clock times): the minimum is the figure least
    disturbed by other processes on a shared machine."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return out, best


def run_ours(
    model, fit_b, train_b, query_sets, ranks, bs, device, repeat=1, sample_labels=True, score=True
):
    from llm_influence.influence import (
        FitConfig,
        ScoreConfig,
        fit_factors,
        precondition_queries,
        score_training,
    )

    rows, keep = [], {}
    fcfg = FitConfig(batch_size=bs, device=device, progress=False, sample_labels=sample_labels)
    factors, s = timed(lambda: fit_factors(model, fit_b, fcfg), repeat)
    rows.append(("fit", None, None, s))
    for nq, qb in query_sets.items():
        for rank in ranks:
            for phase, per_token in (("score", True), ("score_total", False)):
                if not score and not (phase == "score_total" and rank is None):
                    continue
                cfg = ScoreConfig(
                    rank=rank,
                    per_token=per_token,
                    per_layer=per_token,
                    batch_size=bs,
                    device=device,
                    progress=False,
                )

                def go(cfg=cfg, qb=qb):
                    q = precondition_queries(model, factors, qb, cfg)
                    return score_training(model, factors, q, train_b, cfg)

                res, s = timed(go, repeat)
                rows.append((phase, nq, rank, s))
                if phase == "score_total" and rank is None:
                    keep[nq] = res.total
    return factors, rows, keep


def run_refine(model, factors, fit_b, query_sets, product_kinds, steps, bs, device):
    """``refine`` rows: k = 1..max(steps) PCG steps (one run of max(steps) steps; the cost of k steps
    is the query-gradient pass plus the first k step times), for every query count and product kind.
    Returns rows (phase, queries, products, k, seconds) and the query-gradient seconds."""
    from llm_influence.influence import RefineConfig, ScoreConfig, refine_queries

    rows = []
    for products in product_kinds:
        for nq, qb in query_sets.items():
            rc = RefineConfig(steps=max(steps), products=products, batch_size=bs, device=device,
                              progress=False)  # fmt: skip
            sc = ScoreConfig(rank=32, batch_size=bs, device=device, progress=False)
            t = time.perf_counter()
            ref = refine_queries(model, factors, qb, fit_b, rc, sc)
            total = time.perf_counter() - t
            pre = total - sum(ref.seconds)  # query gradients, EK-FAC solve and the rank-32 SVD
            for k in steps:
                rows.append(("refine", nq, products, k, pre + sum(ref.seconds[:k])))
            print(f"refine {products} Q={nq}: step seconds {ref.seconds}, rest {pre:.2f}s, "
                  f"residuals {ref.metrics()['residual_mean']}", flush=True)  # fmt: skip
    return rows


def stage_config(bs, device, rank=32, topk=10):
    """The ScoreConfig of one ``score_shard`` job: EK-FAC total + per-layer for every sequence,
    per-token scores for each query's top-``topk`` only, rank ``rank``."""
    from llm_influence.influence import ScoreConfig

    return ScoreConfig(rank=rank, per_layer=True, per_token=True, topk=topk, batch_size=bs,
                       device=device, progress=False)  # fmt: skip


def stage_new(model, factors, qb, train_b, cfg, candidates=None):
    """What ``score_shard`` runs now: query gradients once, the ekfac + graddot groups, one fused
    pass. -> (scores, seconds of the query-group build)."""
    from llm_influence.influence import build_query_groups, score_groups

    t = time.perf_counter()
    groups = build_query_groups(model, factors, qb, cfg)
    groups_s = time.perf_counter() - t
    out = score_groups(model, factors, groups, train_b, cfg, token_groups=["ekfac"],
                       candidates=candidates)  # fmt: skip
    return out, groups_s


class Baseline:
    """A forward+backward over the first ``n_batches`` training batches, scaled to all of them (same
    shapes, so the same cost per batch): cheap enough to time next to every row, so that a ratio
    compares two timings a few seconds apart on a machine whose load moves by minutes."""

    def __init__(self, model, train_b, n_batches):
        self.model, self.sub = model, train_b[:n_batches]
        self.scale = len(train_b) / len(self.sub)

    def __call__(self) -> float:
        return fwd_bwd_seconds(self.model, self.sub) * self.scale


def timed_rel(fn, base, repeat):
    """Each repetition timed between two baseline runs -> (result, seconds, baseline seconds) of the
    repetition with the smallest ratio to the mean of its two baselines."""
    best, b0 = None, base()
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        sec = time.perf_counter() - t
        b1 = base()
        b = (b0 + b1) / 2
        if best is None or sec / b < best[1] / best[2]:
            best = (out, sec, b)
        b0 = b1
    return best


def stage_old(model, factors, identity, qb, train_b, cfg):
    """What ``score_shard`` ran before issue 10: iter_scores with per-token scores of every
    (query, sequence) pair, padded and concatenated as the stage did, then a second full pass with
    identity-preconditioned queries for the gradient dot product."""
    from llm_influence.influence import ScoreConfig, iter_scores, precondition_queries

    queries = precondition_queries(model, factors, qb, cfg)
    totals, layers, tokens = [], [], []
    for b in iter_scores(model, factors, queries, train_b, cfg):
        totals.append(b.total)
        layers.append(b.layers)
        tokens.append(b.tokens)
    width = max(t.shape[-1] for t in tokens)
    out = {
        "total": torch.cat(totals, dim=1),
        "layers": torch.cat(layers, dim=1),
        "tokens": torch.cat(
            [torch.nn.functional.pad(t, (0, width - t.shape[-1])) for t in tokens], dim=1
        ),  # fmt: skip
    }
    bcfg = ScoreConfig(rank=cfg.rank, per_layer=False, per_token=False, batch_size=cfg.batch_size,
                       dtype=cfg.dtype, device=cfg.device, progress=False)  # fmt: skip
    idq = precondition_queries(model, identity, qb, bcfg)
    out["graddot"] = torch.cat([b.total for b in iter_scores(model, identity, idq, train_b, bcfg)],
                               dim=1)  # fmt: skip
    return out


def candidate_sets(nq, n, fraction, shared, seed=0):
    """A seeded stand-in for TF-IDF candidates: [Q, N] bool, ``fraction`` of the sequences per query,
    drawn independently per query or (``shared``) the same sequences for every query."""
    g = torch.Generator().manual_seed(seed)
    k = max(1, round(fraction * n))
    mask = torch.zeros(nq, n, dtype=torch.bool)
    if shared:
        mask[:, torch.randperm(n, generator=g)[:k]] = True
    else:
        for q in range(nq):
            mask[q, torch.randperm(n, generator=g)[:k]] = True
    return mask


def subset(t, idx):
    return {k: v[idx] for k, v in t.items()}


def run_stage(model, factors, train_t, q_b, bs, device, repeat, fractions, base, topk=10):
    """``stage`` rows (ours now, ours before) and ``tfidf`` rows (ours, candidates only) for every
    query count, each with its own interleaved baseline. Returns rows, the candidate union of each
    tfidf row (for Kronfluence's equivalent) and the agreement of the new pass with the old one."""
    from llm_influence.influence import FitConfig, build_factors, make_batches

    cfg = stage_config(bs, device, topk=topk)
    train_b = make_batches(train_t, bs)
    identity = build_factors(None, None, FitConfig(strategy="identity", device=device),
                             model=model)  # fmt: skip
    rows, unions, checks = [], {}, {}
    n = train_t["input_ids"].shape[0]
    for nq, qb in q_b.items():
        (new, groups_s), s_new, b_new = timed_rel(
            lambda qb=qb: stage_new(model, factors, qb, train_b, cfg), base, repeat
        )
        old, s_old, b_old = timed_rel(
            lambda qb=qb: stage_old(model, factors, identity, qb, train_b, cfg), base, repeat
        )
        top = new["ekfac"].top
        entered = new["ekfac"].meta["topk_entered"]
        rows.append({"impl": "ours", "phase": "stage", "queries": nq, "rank": 32, "seconds": s_new,
                     "fwd_bwd_s": b_new, "topk_entered": entered,
                     "parts": {"query_groups": groups_s, "fused_pass": s_new - groups_s},
                     "contraction": sorted(set(new["ekfac"].meta["contraction"].values()))})  # fmt: skip
        rows.append({"impl": "ours_old", "phase": "stage", "queries": nq, "rank": 32,
                     "seconds": s_old, "fwd_bwd_s": b_old})  # fmt: skip
        ref = old["total"].abs().max()
        # the old per-token table at the new top-k slots: the same numbers, computed for every pair
        qi = torch.arange(nq)[:, None].expand_as(top.index)
        old_tok = old["tokens"][qi, top.index]
        checks[nq] = {
            "total_max_rel_diff": float((new["ekfac"].total - old["total"]).abs().max() / ref),
            "layers_max_rel_diff": float((new["ekfac"].layers - old["layers"]).abs().max() / ref),
            "graddot_max_rel_diff": float(
                (new["graddot"].total - old["graddot"]).abs().max() / old["graddot"].abs().max()
            ),
            "topk_equals_old_topk": bool(
                torch.equal(top.index, old["total"].topk(topk, dim=1).indices)
            ),
            "topk_tokens_max_rel_diff": float(
                (top.tokens[..., : old_tok.shape[-1]] - old_tok).abs().max() / ref
            ),
        }
        del old
        for frac in fractions:
            for shared in (False, True):
                mask = candidate_sets(nq, n, frac, shared, seed=nq)
                union = mask.any(0).nonzero().flatten()
                cand = mask[:, union]
                ub = make_batches(subset(train_t, union), bs)
                (res, groups_s), s, b = timed_rel(
                    lambda qb=qb, ub=ub, c=cand: stage_new(model, factors, qb, ub, cfg, c),
                    base,
                    repeat,
                )
                kind = "shared" if shared else "independent"
                unions[(nq, frac, kind)] = (union, cand)
                inside = cand.gather(1, res["ekfac"].top.index.clamp(min=0)).all()
                rows.append({"impl": "ours", "phase": "tfidf", "queries": nq, "rank": 32,
                             "seconds": s, "fwd_bwd_s": b, "candidates": kind, "fraction": frac,
                             "union_fraction": round(len(union) / n, 4),
                             "topk_within_candidates": bool(inside),
                             "topk_entered": res["ekfac"].meta["topk_entered"],
                             "parts": {"query_groups": groups_s, "fused_pass": s - groups_s}})  # fmt: skip
        print(f"stage Q={nq}: new {s_new:.2f}s / fwd+bwd {b_new:.2f}s (top-k entered {entered}), "
              f"old {s_old:.2f}s / {b_old:.2f}s, agreement {checks[nq]}", flush=True)  # fmt: skip
    return rows, unions, checks


def run_kronfluence_stage(model, fit_t, train_t, q_t, bs, modules, workdir, repeat, unions, base,
                          topk=10):  # fmt: skip
    """Kronfluence's equivalent of one shard job: its pairwise scores (rank 32), its per-module
    scores, the gradient dot product (identity factors, rank 32), and per-token scores for its own
    top-``topk`` per query over the union of those sequences only. tfidf rows: the same over the
    union of the candidates (top-k among each query's candidates). Parts are timed one by one; a
    repetition is the whole row between two baselines."""
    from kronfluence.arguments import FactorArguments, ScoreArguments

    analyzer, ds = kronfluence_analyzer(model, modules, workdir)
    analyzer.fit_all_factors("f", dataset=ds(fit_t), per_device_batch_size=bs,
                             factor_args=FactorArguments(strategy="ekfac"),
                             overwrite_output_dir=True)  # fmt: skip
    analyzer.fit_all_factors("id", dataset=ds(fit_t), per_device_batch_size=bs,
                             factor_args=FactorArguments(strategy="identity"),
                             overwrite_output_dir=True)  # fmt: skip

    def pairwise(name, factors_name, qt, tt, nq, **kw):
        args = ScoreArguments(damping_factor=None, query_gradient_low_rank=32, **kw)
        return timed(lambda: analyzer.compute_pairwise_scores(
            name, factors_name, query_dataset=ds(qt), train_dataset=ds(tt),
            per_device_query_batch_size=nq, per_device_train_batch_size=bs, score_args=args,
            overwrite_output_dir=True))[1]  # fmt: skip

    def stage(tag, qt, tt, nq, cand=None):
        parts = {
            "pairwise": pairwise(f"t{tag}", "f", qt, tt, nq),
            "per_module": pairwise(f"m{tag}", "f", qt, tt, nq, compute_per_module_scores=True),
            "graddot": pairwise(f"g{tag}", "id", qt, tt, nq),
        }

        def tokens():
            per_module = analyzer.load_pairwise_scores(f"m{tag}")
            total = sum(per_module.values())  # [Q, N]
            if cand is not None:
                total = total.masked_fill(~cand, -torch.inf)
            idx = total.topk(min(topk, total.shape[1]), dim=1).indices.unique()
            pairwise(f"k{tag}", "f", qt, subset(tt, idx), nq, compute_per_token_scores=True)
            return len(idx)

        n_tok, parts["tokens"] = timed(tokens)
        return parts, n_tok

    rows = []
    for nq, qt in q_t.items():
        (parts, n_tok), sec, b = timed_rel(lambda qt=qt, nq=nq: stage(f"s{nq}", qt, train_t, nq),
                                           base, repeat)  # fmt: skip
        rows.append({"impl": "kronfluence", "phase": "stage", "queries": nq, "rank": 32,
                     "seconds": sec, "fwd_bwd_s": b, "parts": parts,
                     "token_sequences": n_tok})  # fmt: skip
        print(f"kronfluence stage Q={nq}: {parts}, per-token over {n_tok} sequences", flush=True)
        for (uq, frac, kind), (union, cand) in unions.items():
            if uq != nq:
                continue
            (parts, n_tok), sec, b = timed_rel(
                lambda qt=qt, nq=nq, u=union, c=cand, k=kind: stage(
                    f"c{nq}{k}", qt, subset(train_t, u), nq, c
                ),
                base,
                repeat,
            )
            rows.append({"impl": "kronfluence", "phase": "tfidf", "queries": nq, "rank": 32,
                         "seconds": sec, "fwd_bwd_s": b, "parts": parts, "candidates": kind,
                         "fraction": frac, "union_fraction": round(len(union) /
                         train_t["input_ids"].shape[0], 4), "token_sequences": n_tok})  # fmt: skip
    return rows


def shard_job(args) -> dict:
    """One shard job in this process (``--shard-job N``): load the model and the factors, hold N
    training sequences, run the default stage (or, ``--shard-job-baseline``, a plain forward+backward
    over the same batches); report the peak RSS and the score tables' size."""
    import resource

    from llm_influence.influence import Factors, make_batches
    from llm_influence.utils.heap import fix_mmap_threshold

    if not args.shard_job_default_heap:
        fix_mmap_threshold()  # what score_shard does first

    def vm(key):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
        return None

    n, nq = args.shard_job, max(args.queries)
    model = build_model(args.arch, args.d_model, args.d_ff, args.vocab, args.seq_len)
    factors = Factors.load(args.factors_file, model=model)
    train_t = data(n, args.seq_len, args.vocab, 2)
    qb = make_batches(data(nq, args.seq_len, args.vocab, 3 + nq, prompt=args.seq_len // 2), nq)
    cfg = stage_config(args.batch_size, args.device)
    train_b = make_batches(train_t, args.batch_size)
    rss_before = vm("VmRSS:")
    t = time.perf_counter()
    if args.shard_job_baseline:
        fwd_bwd_seconds(model, train_b)
        tables, entered = 0, None
    else:
        out, _ = stage_new(model, factors, qb, train_b, cfg)
        tables = sum(g.total.numel() * 4 + g.layers.numel() * 4 for g in out.values())
        entered = out["ekfac"].meta["topk_entered"]
    seconds = time.perf_counter() - t
    return {
        "job": "fwd_bwd" if args.shard_job_baseline else "stage",
        "train_seqs": n,
        "queries": nq,
        "seconds": round(seconds, 3),
        "rss_before_scoring": rss_before,
        "peak_rss_self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "tables_bytes": tables,
        "input_bytes": sum(v.numel() * v.element_size() for v in train_t.values()),
        "topk_entered": entered,
    }


def run_memory(args, factors) -> list[dict]:
    """Peak RSS of one shard job per N, each in a fresh subprocess (``os.wait4`` gives that child's
    own ru_maxrss), with the [Q, N] and [Q, N, M] tables' size beside it; and a plain fwd+bwd job at
    the smallest N for reference."""
    import json
    import subprocess
    import sys
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory() as wd:
        path = os.path.join(wd, "factors")
        factors.save(path)
        heaps = ["fixed", "default"] if args.memory_heap == "both" else [args.memory_heap]
        jobs = [(n, False, h) for n in args.memory_seqs for h in heaps]
        jobs += [(min(args.memory_seqs), True, h) for h in heaps]
        for n, baseline, heap in jobs:
            cmd = [sys.executable, os.path.abspath(__file__), "--arch", args.arch,
                   "--d-model", str(args.d_model), "--d-ff", str(args.d_ff), "--vocab",
                   str(args.vocab), "--seq-len", str(args.seq_len), "--batch-size",
                   str(args.batch_size), "--threads", str(args.threads), "--device", args.device,
                   "--queries", str(args.memory_queries), "--shard-job", str(n),
                   "--factors-file", path] + (["--shard-job-baseline"] if baseline else []) + (
                   ["--shard-job-default-heap"] if heap == "default" else [])  # fmt: skip
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
            stdout = proc.stdout.read()
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode != 0:
                raise RuntimeError(f"shard job N={n} failed with exit code {proc.returncode}")
            row = json.loads(stdout.strip().splitlines()[-1].removeprefix("SHARDJOB "))
            row["peak_rss"] = usage.ru_maxrss * 1024
            row["heap"] = heap
            row["peak_rss_minus_tables"] = row["peak_rss"] - row["tables_bytes"]
            row["peak_rss_minus_tables_and_input"] = (
                row["peak_rss_minus_tables"] - row["input_bytes"]
            )
            rows.append(row)
            mib = {k: round(v / 2**20, 1) for k, v in row.items() if k.endswith(("rss", "bytes",
                   "tables", "input", "scoring"))}  # fmt: skip
            print(f"memory {row['job']} N={n} heap {heap}: {mib}, {row['seconds']}s", flush=True)
    return rows


def kronfluence_analyzer(model, modules, workdir):
    """Kronfluence 1.x Analyzer for the summed-CE language-model task on ``modules`` (prepares ``model``
    in place: pass a copy) -> (analyzer, dataset-from-tensors function)."""
    import torch.nn.functional as F
    from kronfluence.analyzer import Analyzer, prepare_model
    from kronfluence.task import Task
    from torch.utils.data import TensorDataset

    tracked = list(modules)

    class LMTask(Task):
        def compute_train_loss(self, batch, model, sample=False):
            ids, mask, labels = batch
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            flat = logits.reshape(-1, logits.shape[-1])
            if sample:
                with torch.no_grad():
                    tgt = torch.multinomial(torch.softmax(flat.detach(), -1), 1).flatten()
                valid = labels[:, 1:].reshape(-1) != -100
                tgt = torch.where(valid, tgt, torch.full_like(tgt, -100))
            else:
                tgt = labels[:, 1:].reshape(-1)
            return F.cross_entropy(flat, tgt, ignore_index=-100, reduction="sum")

        def compute_measurement(self, batch, model):
            return self.compute_train_loss(batch, model, sample=False)

        def get_influence_tracked_modules(self):
            return tracked

        def get_attention_mask(self, batch):
            return batch[1]

    task = LMTask()
    model = prepare_model(model, task)
    analyzer = Analyzer(
        analysis_name="bench",
        model=model,
        task=task,
        output_dir=str(workdir),
        disable_tqdm=True,
        disable_model_save=True,
    )

    def ds(t):
        return TensorDataset(t["input_ids"], t["attention_mask"], t["labels"])

    return analyzer, ds


def run_kronfluence(
    model,
    fit_t,
    train_t,
    query_sets,
    bs,
    modules,
    workdir,
    repeat=1,
    empirical_fisher=False,
    score=True,
):
    """Kronfluence 1.x on the same model/data/modules; EK-FAC, damping_factor=None (0.1 × mean Λ)."""
    from kronfluence.arguments import FactorArguments, ScoreArguments

    analyzer, ds = kronfluence_analyzer(model, modules, workdir)

    fa = FactorArguments(strategy="ekfac", use_empirical_fisher=empirical_fisher)
    rows = []
    _, s = timed(
        lambda: analyzer.fit_all_factors(
            "f",
            dataset=ds(fit_t),
            per_device_batch_size=bs,
            factor_args=fa,
            overwrite_output_dir=True,
        ),
        repeat,
    )
    rows.append(("fit", None, None, s))
    keep = {}

    def pairwise(name, qt, nq, **kw):
        args = ScoreArguments(damping_factor=None, **kw)
        return timed(
            lambda: analyzer.compute_pairwise_scores(
                name,
                "f",
                query_dataset=ds(qt),
                train_dataset=ds(train_t),
                per_device_query_batch_size=nq,
                per_device_train_batch_size=bs,
                score_args=args,
                overwrite_output_dir=True,
            ),
            repeat,
        )[1]

    for nq, qt in query_sets.items():
        for rank in (32, None):
            if not score and rank is not None:
                continue
            s_total = pairwise(f"t{nq}{rank}", qt, nq, query_gradient_low_rank=rank)
            rows.append(("score_total", nq, rank, s_total))
            if rank is None:
                keep[nq] = analyzer.load_pairwise_scores(f"t{nq}{rank}")["all_modules"]
            if not score:
                continue
            s_layer = pairwise(
                f"l{nq}{rank}", qt, nq, query_gradient_low_rank=rank, compute_per_module_scores=True
            )
            s_tok = pairwise(
                f"k{nq}{rank}", qt, nq, query_gradient_low_rank=rank, compute_per_token_scores=True
            )
            rows.append(("score", nq, rank, s_total + s_layer + s_tok))
    return rows, keep


def correlate(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    from scipy.stats import pearsonr, spearmanr

    x, y = a.flatten().double().numpy(), b.flatten().double().numpy()
    return {"pearson": float(pearsonr(x, y)[0]), "spearman": float(spearmanr(x, y)[0])}


def main_stage(args, model, fit_t, train_t, q_t) -> dict:
    """``--only-stage`` / ``--only-memory``: the stage, tfidf and memory rows of issue 10."""
    import copy

    from llm_influence.influence import FitConfig, find_tracked_modules, fit_factors, make_batches

    fit_b, train_b = make_batches(fit_t, args.batch_size), make_batches(train_t, args.batch_size)
    q_b = {n: make_batches(t, n) for n, t in q_t.items()}
    fwd_bwd_seconds(model, train_b[:2])  # warm-up
    full = [timed(lambda: fwd_bwd_seconds(model, train_b), args.repeat)[1]]
    base = Baseline(model, train_b, args.baseline_batches)
    fcfg = FitConfig(batch_size=args.batch_size, device=args.device, progress=False)
    factors = fit_factors(model, fit_b, fcfg)
    rows, checks, memory = [], {}, []
    if not args.only_memory:
        rows, unions, checks = run_stage(model, factors, train_t, q_b, args.batch_size,
                                         args.device, args.repeat, args.tfidf_fractions,
                                         base)  # fmt: skip
        if not args.no_kronfluence:
            import tempfile

            with tempfile.TemporaryDirectory() as wd:
                rows += run_kronfluence_stage(copy.deepcopy(model), fit_t, train_t, q_t,
                                              args.batch_size, find_tracked_modules(model), wd,
                                              args.repeat, unions, base)  # fmt: skip
        full.append(timed(lambda: fwd_bwd_seconds(model, train_b), args.repeat)[1])
    if args.only_memory or args.memory:
        memory = run_memory(args, factors)
    bt = min(full)

    def key(r):
        return (r["phase"], r["queries"], r.get("candidates"), r.get("fraction"))

    for r in rows:  # every ratio is to the row's own interleaved baseline
        r["ratio_to_fwd_bwd"] = round(r["seconds"] / r["fwd_bwd_s"], 3)
    ratio = {(r["impl"],) + key(r): r["ratio_to_fwd_bwd"] for r in rows}
    for r in rows:
        if r["impl"] != "ours":
            r[f"{r['impl']}_over_ours"] = round(
                r["ratio_to_fwd_bwd"] / ratio[("ours",) + key(r)], 3
            )
        if r["phase"] == "tfidf":
            r["ratio_to_all"] = round(
                r["ratio_to_fwd_bwd"] / ratio[(r["impl"], "stage", r["queries"], None, None)], 3
            )
        r["seconds"], r["fwd_bwd_s"] = round(r["seconds"], 4), round(r["fwd_bwd_s"], 4)
        if "parts" in r:
            r["parts"] = {k: round(v, 4) for k, v in r["parts"].items()}
    result = {
        "rows": rows,
        "agreement_new_vs_old": checks,
        "memory": memory,
        "setup": {
            "arch": args.arch,
            "d_model": args.d_model,
            "d_ff": args.d_ff,
            "vocab": args.vocab,
            "fit_seqs": args.fit_seqs,
            "train_seqs": args.train_seqs,
            "seq_len": args.seq_len,
            "batch_size": args.batch_size,
            "threads": args.threads,
            "repeat": args.repeat,
            "topk": 10,
            "rank": 32,
            "fwd_bwd_train_s": round(bt, 4),
            "fwd_bwd_train_full_runs_s": [round(b, 4) for b in full],
            "baseline_batches": args.baseline_batches,
            "memory_queries": args.memory_queries,
            "malloc_mmap_threshold": os.environ.get("MALLOC_MMAP_THRESHOLD_"),
            "load_average": list(os.getloadavg()),
        },
    }
    print(f"{args.arch}: fwd+bwd over the {args.train_seqs} training sequences {bt:.2f}s "
          f"(start, end: {[round(b, 2) for b in full]}), threads {args.threads}, fastest of "
          f"{args.repeat}, load average {os.getloadavg()}")  # fmt: skip
    print(f"{'impl':12s} {'phase':7s} {'Q':>4s} {'cand':>12s} {'seconds':>9s} {'fwd+bwd':>8s} "
          f"{'ratio':>6s}")  # fmt: skip
    for r in rows:
        extra = f" union {r['union_fraction']:.0%}, x all {r.get('ratio_to_all', '')}" if (
            r["phase"] == "tfidf") else ""  # fmt: skip
        print(f"{r['impl']:12s} {r['phase']:7s} {r['queries']:4d} {str(r.get('candidates', '')):>12s}"
              f" {r['seconds']:9.2f} {r['fwd_bwd_s']:8.2f} {r['ratio_to_fwd_bwd']:6.2f}{extra}")  # fmt: skip
    if args.json:
        from llm_influence.utils.io import write_json

        write_json(args.json, result)
    return result


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--arch", choices=["llama", "gpt_neox"], default="llama")
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--d-ff", type=int, default=512)
    ap.add_argument("--vocab", type=int, default=1000)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--fit-seqs", type=int, default=512)
    ap.add_argument("--train-seqs", type=int, default=1024)
    ap.add_argument("--queries", type=int, nargs="+", default=[8, 64])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--repeat", type=int, default=3, help="time every row this often, keep the fastest"
    )
    ap.add_argument("--quick", action="store_true", help="64 fit / 128 train sequences")
    ap.add_argument("--no-kronfluence", action="store_true")
    ap.add_argument(
        "--no-empirical-check",
        action="store_true",
        help="skip the extra correlation with true labels on both sides (empirical Fisher)",
    )
    ap.add_argument("--json", default=None, help="write the rows as JSON here")
    ap.add_argument(
        "--refine-steps", type=int, nargs="+", default=[1, 2, 4], help="refine rows: PCG steps k"
    )
    ap.add_argument(
        "--refine-products", nargs="+", default=["sampled", "gnh"], choices=["sampled", "gnh"]
    )
    ap.add_argument(
        "--refine-fit-seqs",
        type=int,
        default=64,
        help="fit sequences of the refine products (the ratio is to a fwd+bwd over the same ones)",
    )
    ap.add_argument(
        "--only-refine", action="store_true", help="fit factors, then only the refine rows"
    )
    ap.add_argument(
        "--only-stage",
        action="store_true",
        help="fit factors, then only the stage and tfidf rows (and the memory rows with --memory)",
    )
    ap.add_argument(
        "--tfidf-fractions",
        type=float,
        nargs="+",
        default=[0.1],
        help="tfidf rows: fraction of the training sequences that are each query's candidates",
    )
    ap.add_argument("--memory", action="store_true", help="with --only-stage: also the memory rows")
    ap.add_argument(
        "--only-memory", action="store_true", help="fit factors, then only the memory rows"
    )
    ap.add_argument(
        "--memory-seqs",
        type=int,
        nargs="+",
        default=[1024, 4096, 16384],
        help="memory rows: training sequences held by one shard job (one subprocess each)",
    )
    ap.add_argument("--memory-queries", type=int, default=64, help="memory rows: queries")
    ap.add_argument(
        "--memory-heap",
        choices=["fixed", "default", "both"],
        default="fixed",
        help="memory rows: glibc heap as score_shard sets it (fixed mmap threshold), glibc's "
        "default, or both side by side",
    )
    ap.add_argument(
        "--baseline-batches",
        type=int,
        default=8,
        help="stage rows: the fwd+bwd timed next to each row runs over this many training batches, "
        "scaled to all",
    )
    ap.add_argument("--shard-job", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--factors-file", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--shard-job-baseline", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--shard-job-default-heap", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.quick:
        args.fit_seqs, args.train_seqs = 64, 128
    if args.memory and not args.only_stage:
        ap.error("--memory goes with --only-stage (or use --only-memory)")
    if sum([args.only_refine, args.only_stage, args.only_memory]) > 1:
        ap.error("--only-refine, --only-stage and --only-memory exclude each other")
    if not 0 < min(args.tfidf_fractions) <= max(args.tfidf_fractions) <= 1:
        ap.error(f"--tfidf-fractions must lie in (0, 1], got {args.tfidf_fractions}")
    if args.baseline_batches < 1:
        ap.error(f"--baseline-batches must be >= 1, got {args.baseline_batches}")
    if min(args.memory_seqs) < 1 or args.memory_queries < 1:
        ap.error("--memory-seqs and --memory-queries must be >= 1")
    torch.set_num_threads(args.threads)
    if args.shard_job is not None:
        import json

        print("SHARDJOB " + json.dumps(shard_job(args)), flush=True)
        return {}
    import copy

    from llm_influence.influence import find_tracked_modules, make_batches

    model = build_model(args.arch, args.d_model, args.d_ff, args.vocab, args.seq_len)
    fit_t = data(args.fit_seqs, args.seq_len, args.vocab, 1)
    train_t = data(args.train_seqs, args.seq_len, args.vocab, 2)
    q_t = {
        n: data(n, args.seq_len, args.vocab, 3 + n, prompt=args.seq_len // 2) for n in args.queries
    }
    if args.only_stage or args.only_memory:
        return main_stage(args, model, fit_t, train_t, q_t)
    fit_b, train_b = make_batches(fit_t, args.batch_size), make_batches(train_t, args.batch_size)
    q_b = {n: make_batches(t, n) for n, t in q_t.items()}
    fwd_bwd_seconds(model, train_b[:2])  # warm-up
    base_fit = [timed(lambda: fwd_bwd_seconds(model, fit_b), args.repeat)[1]]
    base_train = [timed(lambda: fwd_bwd_seconds(model, train_b), args.repeat)[1]]
    ref_b = make_batches({k: v[: args.refine_fit_seqs] for k, v in fit_t.items()}, args.batch_size)
    base_ref = [timed(lambda: fwd_bwd_seconds(model, ref_b), args.repeat)[1]]
    if args.only_refine:
        from llm_influence.influence import FitConfig, fit_factors

        fcfg = FitConfig(batch_size=args.batch_size, device=args.device, progress=False)
        factors, s_fit = timed(lambda: fit_factors(model, fit_b, fcfg), args.repeat)
        rows, ours_scores = [("fit", None, None, s_fit)], {}
    else:
        factors, rows, ours_scores = run_ours(
            model, fit_b, train_b, q_b, [32, None], args.batch_size, args.device, args.repeat
        )
    raw = [("ours", r) for r in rows]
    ref_rows = run_refine(model, factors, ref_b, q_b, args.refine_products, args.refine_steps,
                          args.batch_size, args.device)  # fmt: skip
    base_ref.append(timed(lambda: fwd_bwd_seconds(model, ref_b), args.repeat)[1])
    correlation, corr_emp, n = None, None, max(args.queries)
    have_kf = False
    if not args.no_kronfluence and not args.only_refine:
        try:
            import kronfluence  # noqa: F401

            have_kf = True
        except ImportError:
            print("kronfluence not importable: comparison skipped")
    if have_kf:
        import tempfile

        modules = find_tracked_modules(model)
        emp = {}
        if not args.no_empirical_check:  # true labels on both sides: no Monte-Carlo label noise
            _, _, emp_ours = run_ours(
                model,
                fit_b,
                train_b,
                {n: q_b[n]},
                [None],
                args.batch_size,
                args.device,
                sample_labels=False,
                score=False,
            )
        with tempfile.TemporaryDirectory() as wd:
            krows, kscores = run_kronfluence(
                copy.deepcopy(model), fit_t, train_t, q_t, args.batch_size, modules, wd, args.repeat
            )
            if not args.no_empirical_check:
                _, emp = run_kronfluence(
                    copy.deepcopy(model),
                    fit_t,
                    train_t,
                    {n: q_t[n]},
                    args.batch_size,
                    modules,
                    wd,
                    empirical_fisher=True,
                    score=False,
                )
        raw += [("kronfluence", r) for r in krows]
        correlation = correlate(ours_scores[n], kscores[n])
        if emp:
            corr_emp = correlate(emp_ours[n], emp[n])
    # the baseline again after everything (min over all): load that came and went hits it less
    base_fit.append(timed(lambda: fwd_bwd_seconds(model, fit_b), args.repeat)[1])
    base_train.append(timed(lambda: fwd_bwd_seconds(model, train_b), args.repeat)[1])
    bf, bt = min(base_fit), min(base_train)
    out_rows = []
    for impl, (phase, nq, rank, s) in raw:
        base = bf if phase == "fit" else bt
        out_rows.append(
            {
                "impl": impl,
                "phase": phase,
                "queries": nq,
                "rank": rank,
                "seconds": round(s, 4),
                "ratio_to_fwd_bwd": round(s / base, 3),
            }
        )
    br = min(base_ref)
    for phase, nq, products, k, s in ref_rows:
        out_rows.append({"impl": "ours", "phase": phase, "queries": nq, "rank": 32, "products": products,
                         "steps": k, "seconds": round(s, 4), "ratio_to_fwd_bwd": round(s / br, 3)})  # fmt: skip
    result = {
        "rows": out_rows,
        "correlation": correlation,
        "correlation_empirical_fisher": corr_emp,
        "setup": {
            "arch": args.arch,
            "fit_seqs": args.fit_seqs,
            "train_seqs": args.train_seqs,
            "seq_len": args.seq_len,
            "batch_size": args.batch_size,
            "threads": args.threads,
            "repeat": args.repeat,
            "fwd_bwd_fit_s": round(bf, 4),
            "fwd_bwd_train_s": round(bt, 4),
            "refine_fit_seqs": args.refine_fit_seqs,
            "fwd_bwd_refine_fit_s": round(br, 4),
            "load_average": list(os.getloadavg()),
        },
    }
    print(
        f"{args.arch}: fwd+bwd fit set {bf:.2f}s, train set {bt:.2f}s, threads {args.threads}, "
        f"fastest of {args.repeat}, load average {os.getloadavg()}"
    )
    print(f"{'impl':12s} {'phase':12s} {'Q':>4s} {'rank':>5s} {'seconds':>9s} {'ratio':>7s}")
    for r in out_rows:
        extra = f" {r['products']} k={r['steps']}" if r["phase"] == "refine" else ""
        print(
            f"{r['impl']:12s} {r['phase']:12s} {str(r['queries']):>4s} {str(r['rank']):>5s} "
            f"{r['seconds']:9.2f} {r['ratio_to_fwd_bwd']:7.2f}{extra}"
        )
    if correlation:
        print(
            f"correlation with kronfluence (full rank, {n} queries, sampled labels): {correlation}"
        )
    if corr_emp:
        print(
            f"correlation with kronfluence (full rank, {n} queries, empirical Fisher): {corr_emp}"
        )
    if args.json:
        from llm_influence.utils.io import write_json

        write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
