# Helpers shared by the rule files (functions only; Snakemake lint wants them apart).
#
# How every stage is written (docs/workflow.md, "Adding a stage") --
#   input:   upstream directories by name + code=code_files(<packages the entry imports>)
#   output:  one directory() per artifact, under data/ or results/, disjoint from all others
#   log:     logs/<rule>[/<wildcards>].log
#   params:  entry="<module>:<function>", config=config_params(<sections>),
#            optionally metrics=["headline.json"] (DVC metric: flat numbers chosen from the stage's
#            metrics.json by llm_influence.workflow.headline) / plots={...} (files inside the
#            output directory, for DVC),
#            files=[...] only for a file output without a data suffix (.md/.json/... are files)
#   script:  "../scripts/stage.py"
# and register the end products with final_targets(lambda: [...]) so that `rule all` builds them.
import os
import shutil
from pathlib import Path

from llm_influence.attribution.estimators import estimator_names
from llm_influence.counterfactual.spec import (
    LEAVEOUT_KEYS,
    RANDOM_CONTROL,
    SUBSET_KEYS,
    TFIDF,
    job_settings,
)
from llm_influence.studies import registry as study_registry

PACKAGE_ROOT = Path("src/llm_influence")

# Library files every stage runs through (runner, context, provenance, io, seeding) and the
# artifact names and readers (llm_influence.artifacts: every stage reads or writes artifacts).
CORE_CODE = [
    "__init__.py",
    "artifacts",
    "utils",
    "workflow/__init__.py",
    "workflow/context.py",
    "workflow/headline.py",
    "workflow/runner.py",
    "workflow/provenance.py",
]

# What loading a model runs through (models/__init__.py imports loading and spec; loading's
# load_tokenizer imports tokenizer): the code of the rules that load a trained model.
MODEL_LOADING = [
    "models/__init__.py",
    "models/loading.py",
    "models/spec.py",
    "models/tokenizer.py",
]


def _files_under(rel):
    path = PACKAGE_ROOT / rel
    if path.is_file():
        return [str(path)]
    return sorted(
        str(p)
        for p in path.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    )


def code_files(*packages):
    """Library files of a stage -- the core plus the named parts of llm_influence.

    They are rule inputs (Snakemake reruns the rule when one is newer than its output) and
    `llm-influence dvc-sync` turns them into DVC deps (one per subpackage directory).
    A package that does not exist yet contributes nothing, so the workflow still parses.
    """
    files = []
    for rel in [*CORE_CODE, *packages]:
        files.extend(_files_under(rel))
    return sorted(set(files))


def config_params(*sections):
    """Config values of a stage -- the top-level seed plus its sections.

    Passed as `params: config=...`: Snakemake reruns the rule when they change, DVC tracks the
    same keys as `params: config/config.yaml: [seed, <sections>]`.
    """
    return {"seed": config["seed"], **{name: config[name] for name in sections}}


FINAL_TARGETS = []


def final_targets(fn):
    """Register `fn() -> list of paths`: end products that `rule all` builds.

    Each rules/*.smk registers its own, e.g. `final_targets(lambda: ["results/tfidf"])`.
    """
    FINAL_TARGETS.append(fn)


def all_targets():
    return [target for fn in FINAL_TARGETS for target in fn()]


def score_tables(wildcards=None):
    """The per-model influence tables, in the order of config["models"] (smallest first)."""
    return expand("results/scores/{model}/table", model=config["models"])


def model_dirs(wildcards=None):
    return expand("data/models/{model}", model=config["models"])


def gpu_slots():
    """`resources: gpu=GPU` on the rules that use an accelerator: 1 where one is visible (so jobs
    queue for it, and the SLURM executor asks for `--gpus=1`), 0 on CPU-only machines so those
    jobs run side by side on the cores. Decided without importing torch (it would slow every parse).
    """
    if config["device"] == "cpu":
        return 0
    if config["device"] == "cuda":
        return 1
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return 0
    return 1 if shutil.which("nvidia-smi") or os.environ.get("SLURM_JOB_GPUS") else 0


GPU = gpu_slots()


# --- Counterfactual (workflow/rules/counterfactual.smk): retrainings per model of
# counterfactual.models, one per LDS subset and one per leave-out method (every estimator the
# score table holds, TF-IDF and the random control).

CF = config["counterfactual"]
# what the retraining jobs import (the study's maths and figures are not among them)
CF_RETRAIN_CODE = [
    *(
        f"counterfactual/{m}.py"
        for m in ("__init__", "spec", "subsets", "measure", "estimators", "stage")
    ),
    "models",
    "attribution/__init__.py",
    "attribution/estimators.py",
]
CF_SUBSETS = list(range(CF["subsets"]))
CF_METHODS = [
    *estimator_names(config["factors"]["strategy"], config["scores"]),
    TFIDF,
    RANDOM_CONTROL,
]


def leaveout_scores(wildcards):
    """What a leave-out run ranks by: the score table, the TF-IDF candidates (BM25 on the
    training rows' grid, no score table needed) or nothing (the random control)."""
    if wildcards.method == RANDOM_CONTROL:
        return {}
    if wildcards.method == TFIDF:
        return {"tfidf": "results/tfidf"}
    return {"scores": f"results/scores/{wildcards.model}/table"}


def retrain_params(keys):
    """The pretraining recipe and the part of the counterfactual section one retraining reads."""
    return config_params("pretrain") | {
        "counterfactual": job_settings(CF, keys),
        "device": config["device"],
    }


def counterfactual_runs(kind):
    """Every retraining directory of one kind ("subsets" or "leaveout"), all models."""
    items = CF_SUBSETS if kind == "subsets" else CF_METHODS
    return [
        f"results/counterfactual/{m}/{kind}/{i}" for m in CF["models"] for i in items
    ]


def counterfactual_study_inputs(wildcards):
    """The study's inputs: every retraining, the score tables it ranks by, the TF-IDF output and
    the queries; nothing but the code when no model is retrained (the study records the skip).
    """
    if not CF["models"]:
        return {}
    return {
        "subsets": counterfactual_runs("subsets"),
        "leaveout": counterfactual_runs("leaveout"),
        "scores": expand("results/scores/{model}/table", model=CF["models"]),
        "tfidf": "results/tfidf",
        "queries": "data/queries",
    }
