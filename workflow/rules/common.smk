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
