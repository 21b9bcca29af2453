"""Cost of one counterfactual retraining (rule retrain_subset) per model size, for docs/validation.md.

    OMP_NUM_THREADS=1 python benchmarks/bench_retrain.py --model small               # the recipe
    OMP_NUM_THREADS=1 python benchmarks/bench_retrain.py --model large --max-steps 150

Builds the config's corpus, tokenizer, tokenised set and queries once under ``--root`` (the real
stage entries), then runs ``llm_influence.counterfactual.stage:retrain_subset`` (subset 0, one
thread) with ``pretrain.max_steps`` = ``--max-steps`` (0 = the recipe's epochs) and prints one JSON
line: steps, seconds of the training loop, seconds of the stage and s per step. Seconds per step do
not depend on the step count, so a capped run gives the per-step cost of a size cheaply; the
machine's load belongs beside every figure (it is printed).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from pathlib import Path

import yaml

from llm_influence.workflow.runner import run_stage

REPO = Path(__file__).resolve().parents[1]


def _run(
    entry: str, config: dict, inputs: dict, outputs: dict, wildcards: dict | None = None
) -> None:
    run_stage(entry, rule=entry.rsplit(":", 1)[1], config=config, inputs=inputs,
              outputs={k: str(v) for k, v in outputs.items()}, wildcards=wildcards or {}, threads=1)  # fmt: skip


def build_data(config: dict, root: Path) -> dict[str, Path]:
    p = {k: root / k for k in ("corpus", "tokenizer", "tokenized", "queries")}
    if (p["queries"] / "queries.parquet").is_file():
        return p
    _run("llm_influence.corpus.stage:build_corpus", config, {}, {"corpus": p["corpus"]})
    _run("llm_influence.models.stage:train_tokenizer", config, {"corpus": p["corpus"]},
         {"tokenizer": p["tokenizer"]})  # fmt: skip
    _run("llm_influence.models.stage:tokenize_corpus", config,
         {"corpus": p["corpus"], "tokenizer": p["tokenizer"]}, {"tokenized": p["tokenized"]})  # fmt: skip
    _run("llm_influence.queries.stage:build_queries", config,
         {"corpus": p["corpus"], "tokenizer": p["tokenizer"]}, {"queries": p["queries"]})  # fmt: skip
    return p


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "config/config.yaml"))
    parser.add_argument("--model", default="small")
    parser.add_argument("--max-steps", type=int, default=0)
    parser.add_argument("--root", default="/tmp/llm-influence-bench-retrain")
    args = parser.parse_args()
    config = yaml.safe_load(Path(args.config).read_text())
    config["queries"]["file"] = str(REPO / config["queries"]["file"])
    paths = build_data(config, Path(args.root))
    config = copy.deepcopy(config)
    config["pretrain"]["max_steps"] = args.max_steps
    out = Path(args.root) / f"run_{args.model}_{args.max_steps}"
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    _run("llm_influence.counterfactual.stage:retrain_subset", config,
         {k: paths[k] for k in ("tokenized", "tokenizer", "queries")}, {"retrain": out},
         {"model": args.model, "subset": "0"})  # fmt: skip
    stage = time.perf_counter() - t0
    prov = json.loads((out / "provenance.json").read_text())["metrics"]
    steps, train = prov["steps"][0], prov["train_seconds"][0]
    print(json.dumps({"model": args.model, "steps": steps, "train_s": train, "stage_s": round(stage, 1),
                      "s_per_step": round(train / steps, 4), "load_1min": round(load, 1),
                      "n_kept_rows": prov["n_kept_rows"]}))  # fmt: skip


if __name__ == "__main__":
    main()
