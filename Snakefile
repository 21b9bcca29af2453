# Grosse et al. (2023) "Studying LLM Generalization with Influence Functions", reproduced.
#
#   snakemake --cores 2                               # the embedded default (config/config.yaml)
#   snakemake --cores 2 --configfile config/smoke.yaml
#
# Snakemake executes, DVC records: `dvc.yaml` is generated from this file by
# `llm-influence dvc-sync`; after a successful run the `onsuccess` handler records the outputs of
# the jobs that ran in dvc.lock and the DVC cache (see docs/workflow.md).
import time

from snakemake.utils import min_version

from llm_influence.counterfactual.spec import validate_counterfactual
from llm_influence.workflow.config import (
    coerce_config,
    validate_config,
    validate_query_files,
)

min_version("9.0")


configfile: "config/config.yaml"


# Fails before any job runs, naming every bad key path and why. Nested --config values arrive as
# strings ("tfidf={'top_k': 5}" gives '5'): they are read as the schema's types first.
CONFIG_SCHEMA = workflow.source_path("workflow/schemas/config.schema.yaml")
coerce_config(config, CONFIG_SCHEMA)
validate_config(config, CONFIG_SCHEMA)
validate_query_files(config)
validate_counterfactual(config)

RUN_STARTED = time.time()


wildcard_constraints:
    model=r"[A-Za-z0-9_.-]+",
    shard=r"\d+",


include: "workflow/rules/common.smk"
include: "workflow/rules/corpus.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/queries.smk"
include: "workflow/rules/tfidf.smk"
include: "workflow/rules/factors.smk"
include: "workflow/rules/scores.smk"
include: "workflow/rules/studies.smk"
include: "workflow/rules/counterfactual.smk"


rule all:
    default_target: True
    input:
        all_targets(),


onsuccess:
    from llm_influence.workflow.dvc_sync import commit_after_run

    commit_after_run(config, since=RUN_STARTED)
