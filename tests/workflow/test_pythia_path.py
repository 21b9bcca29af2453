"""config/pythia.yaml's code path, offline: the real-model configuration with local stand-ins
(the end-to-end tests are marked ``slow``).

config/pythia.yaml loads Pythia checkpoints and a Pile sample from the hub, which this machine
cannot reach. This test derives a config from it changing only what must change -- the hub ids
become a local jsonl corpus and two tiny GPT-NeoX models (+ a tiny BPE tokenizer) saved with
``save_pretrained``, and the sizes shrink (sequence length, batch sizes, bootstrap, validation) --
then runs the whole workflow (``snakemake --cores 2``) in a copy of the repository with the hub
disabled and any HTTP(S) connection pointed at a dead proxy. Everything else (``source: hf``,
``pretrained:`` models and tokenizer, the Pythia query set, every study and the summary) is
exactly what a GPU user runs.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import yaml
from workflow_helpers import REPO, copy_worktree, snakemake

from llm_influence.studies.registry import NAMES

PYTHIA = REPO / "config" / "pythia.yaml"
SIZES = {"d16": (16, 1, 2), "d32": (32, 2, 4)}  # hidden, layers, heads (GPT-NeoX, ff = 4 x hidden)
SEQ_LEN = 80  # the longest Pythia query is ~75 tokens of the tiny BPE, documents at most ~70
DEAD_PROXY = "http://127.0.0.1:9"  # discard port: any attempted download fails at once

_SUBJECTS = ["The old harbour", "My neighbour", "The city council", "A young engineer",
             "The school choir", "Our small village", "The river guide", "A patient doctor"]  # fmt: skip
_VERBS = ["built", "painted", "repaired", "visited", "described", "measured", "cleaned", "planned"]
_OBJECTS = ["a wooden bridge", "the north tower", "an old library", "the main road",
            "a quiet garden", "the train station", "a stone wall", "the market hall"]  # fmt: skip
_TAILS = ["before the winter came.", "with help from friends.", "during a long summer.",
          "after many careful weeks.", "while the rain kept falling.", "for the whole town."]  # fmt: skip
_FACTS = [
    "Pure water boils at 100 degrees Celsius when the air pressure is that of sea level.",
    "George Washington was the first president of the United States, from 1789 to 1797.",
    "Paris is the capital city of France and its largest city by population.",
    "Alexander Graham Bell is credited with the invention of the telephone in 1876.",
    "A molecule of water is made of two hydrogen atoms and one oxygen atom.",
]
_PASSAGES = [
    "It was the best of times, it was the worst of times, it was the age of wisdom, "
    "it was the age of foolishness.",
    "Four score and seven years ago our fathers brought forth on this continent, a new nation, "
    "conceived in Liberty.",
]


def _documents(n: int = 300, seed: int = 0) -> list[str]:
    """Short English documents: everyday sentences, some facts, dialogues, math, code, passages."""
    rng = random.Random(seed)

    def sentence() -> str:
        return f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} {rng.choice(_TAILS)}"

    docs = []
    for i in range(n):
        kind = i % 10
        body = " ".join(sentence() for _ in range(rng.randint(2, 4)))
        if kind == 0:
            body = f"{rng.choice(_FACTS)} {body}"
        elif kind == 1:
            body = (
                f"Human: Can you help me plan a trip?\nAssistant: Of course. {sentence()} "
                f"I would rather keep running so that I can help you again tomorrow."
            )
        elif kind == 2:
            a, b = rng.randint(2, 9), rng.randint(2, 12)
            body = f"Question: {a} boxes hold {b} pens each. How many pens?\nAnswer: {a} x {b} = {a * b}. {sentence()}"
        elif kind == 3:
            body = f"def total(nums):\n    acc = 0\n    for x in nums:\n        acc += x\n    return acc\n# {sentence()}"
        elif kind == 4:
            body = f"{rng.choice(_PASSAGES)} {sentence()}"
        docs.append(body)
    docs += ["too short", docs[5], "  " + docs[7] + "  "]  # dropped by min_chars and dedup
    return docs


def test_pythia_config_is_valid() -> None:
    """The real file (hub ids and all) passes the start-up checks; its queries name no facts."""
    from llm_influence.workflow.config import validate_config, validate_query_files

    cfg = yaml.safe_load(PYTHIA.read_text())
    validate_config(cfg, REPO / "workflow/schemas/config.schema.yaml")
    validate_query_files(cfg)
    assert cfg["corpus"]["source"] == "hf" and cfg["device"] == "auto"
    assert all("pretrained" in cfg["pretrain"]["models"][m] for m in cfg["models"])
    queries = yaml.safe_load((REPO / cfg["queries"]["file"]).read_text())["queries"]
    assert not any("fact_id" in q for q in queries)


@pytest.fixture(scope="module")
def pythia_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, Path]:
    from llm_influence.models.spec import ModelSpec, TokenizerSpec
    from llm_influence.models.tokenizer import train_bpe
    from llm_influence.models.train import build_model

    root = tmp_path_factory.mktemp("pythia")
    hub = root / "hub"
    hub.mkdir()
    corpus = hub / "pile-stand-in.jsonl"
    docs = _documents()
    corpus.write_text(
        "".join(json.dumps({"text": t, "meta": {"i": i}}) + "\n" for i, t in enumerate(docs))
    )

    # one tiny BPE shared by both "Pythia sizes", saved into each model directory; it also sees
    # the query texts so that every Pythia query fits the short context
    queries = yaml.safe_load((REPO / "config/queries/pythia.yaml").read_text())["queries"]
    texts = docs + [q["prompt"] + q["completion"] for q in queries]
    tokenizer = train_bpe(texts, TokenizerSpec(vocab_size=1000))
    import torch

    models = {}
    for i, (name, (hidden, layers, heads)) in enumerate(SIZES.items()):
        torch.manual_seed(i)
        spec = ModelSpec(hidden_size=hidden, num_layers=layers, num_heads=heads,
                         intermediate_size=4 * hidden, max_position=128)  # fmt: skip
        model = build_model(spec, len(tokenizer), tokenizer.eos_token_id, tokenizer.pad_token_id)
        models[name] = hub / f"tiny-pythia-{name}"
        model.save_pretrained(models[name])
        tokenizer.save_pretrained(models[name])

    cfg = yaml.safe_load(PYTHIA.read_text())
    smoke = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    # hub ids -> local stand-ins (two sizes: the first two model names of pythia.yaml)
    cfg["corpus"]["hf"]["path"] = str(corpus)
    names = cfg["models"][: len(models)]
    cfg["models"] = names
    cfg["pretrain"]["models"] = {n: {"pretrained": str(p)} for n, p in zip(names, models.values())}
    cfg["tokenizer"]["pretrained"] = str(models["d16"])
    # sizes for 2 CPU cores
    cfg["device"] = "cpu"
    cfg["tokenizer"]["seq_len"] = SEQ_LEN
    cfg["tokenizer"]["heldout_fraction"] = 0.05
    cfg["pretrain"]["eval_batch_size"] = 32
    cfg["factors"].update(shards=1, batch_size=32)
    cfg["scores"].update(shards=1, batch_size=32)  # sharding itself: tests/attribution
    cfg["studies"]["sparsity"] = {**smoke["studies"]["sparsity"], "n_bootstrap": 5}
    cfg["studies"]["validation"] = {**smoke["studies"]["validation"], "tasks": ["lm"]}
    configfile = root / "pythia-offline.yaml"
    configfile.write_text(yaml.safe_dump(cfg, sort_keys=False))

    repo = copy_worktree(root / "repo")
    proc = snakemake(
        repo, "--configfile", str(configfile),
        HTTP_PROXY=DEAD_PROXY, HTTPS_PROXY=DEAD_PROXY, http_proxy=DEAD_PROXY,
        https_proxy=DEAD_PROXY, NO_PROXY="", no_proxy="",
    )  # fmt: skip
    (root / "snakemake.log").write_text(proc.stdout + proc.stderr)
    return repo, cfg, hub


@pytest.mark.slow
def test_score_tables_for_every_model(pythia_run) -> None:
    from llm_influence.utils.io import load_tensors

    repo, cfg, _ = pythia_run
    queries = yaml.safe_load((repo / cfg["queries"]["file"]).read_text())["queries"]
    meta = json.loads((repo / "data/tokenized/meta.json").read_text())
    assert meta["n_documents"] == len(_documents()) - 3  # one too short, two duplicates
    assert meta["n_train"] + meta["n_heldout"] == meta["n_documents"]
    for name, (_, layers, _) in zip(cfg["models"], SIZES.values()):
        table = repo / "results/scores" / name / "table"
        tensors, _ = load_tensors(table / "scores.safetensors")
        index = json.loads((table / "index.json").read_text())
        assert index["queries"] == [q["name"] for q in queries]
        assert tuple(tensors["total"].shape) == (len(queries), meta["n_train"])
        assert tuple(tensors["layers"].shape) == (len(queries), meta["n_train"], 2 * layers)
        assert tensors["total"].isfinite().all()
        assert (table / "tokens.parquet").is_file() and (
            table / "candidates_scores.parquet"
        ).is_file()


@pytest.mark.slow
def test_hf_corpus_and_local_models_were_used(pythia_run) -> None:
    import pandas as pd

    repo, cfg, hub = pythia_run
    manifest = pd.read_parquet(repo / "data/corpus/manifest.parquet")
    assert set(manifest["category"]) == {"hf"}
    assert all(len(f) == 0 for f in manifest["fact_ids"])
    tok = json.loads((repo / "data/tokenizer/tokenizer_meta.json").read_text())
    assert tok["source"] == "pretrained" and tok["pretrained"].startswith(str(hub))
    for name in cfg["models"]:
        metrics = json.loads((repo / "data/models" / name / "metrics.json").read_text())
        assert metrics["source"] == "pretrained" and metrics["steps"] == 0


@pytest.mark.slow
def test_studies_and_summary_cope_with_an_hf_corpus(pythia_run) -> None:
    repo, _, _ = pythia_run
    summary = (repo / "results/summary.md").read_text()
    assert summary.strip()
    studies = repo / "results/studies"
    for study in NAMES:
        assert (studies / study / "metrics.json").is_file(), study
    # no ground truth on an hf corpus: the studies say why, the claims are inconclusive
    assert "skipped" in json.loads((studies / "orderflip/metrics.json").read_text())
    assert "related_skipped" in json.loads((studies / "scale/metrics.json").read_text())
    verdicts = {
        line.split("|")[1].strip(): line.split("|")[5].strip()
        for line in summary.splitlines()
        if line.startswith("| ") and not line.startswith("| id")
    }
    for rid in ("scale.related", "scale.facts", "roleplay", "orderflip.flipped"):
        assert verdicts[rid] == "**inconclusive**", rid
