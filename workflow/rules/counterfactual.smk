# Counterfactual validation (docs/validation.md): retrain each model of counterfactual.models with
# its pretraining recipe and seed on random document subsets (LDS) and without each method's top
# documents for the fact queries (leave-top-k-out); one job per retraining, so a cluster runs them
# side by side. The study compares the scores' predictions with what the retrainings measured.
# Settings and input functions: workflow/rules/common.smk ("Counterfactual").


rule retrain_subset:
    input:
        tokenized="data/tokenized",
        tokenizer="data/tokenizer",
        queries="data/queries",
        code=code_files(*CF_RETRAIN_CODE),
    output:
        retrain=directory("results/counterfactual/{model}/subsets/{subset}"),
    log:
        "logs/retrain_subset/{model}/{subset}.log",
    wildcard_constraints:
        subset=r"\d+",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        gpu=GPU,
    params:
        entry="llm_influence.counterfactual.stage:retrain_subset",
        config=lambda wc: retrain_params(SUBSET_KEYS),
    script:
        "../scripts/stage.py"


rule retrain_leaveout:
    input:
        unpack(leaveout_scores),
        model="data/models/{model}",
        tokenized="data/tokenized",
        tokenizer="data/tokenizer",
        queries="data/queries",
        code=code_files(*CF_RETRAIN_CODE),
    output:
        retrain=directory("results/counterfactual/{model}/leaveout/{method}"),
    log:
        "logs/retrain_leaveout/{model}/{method}.log",
    wildcard_constraints:
        method="|".join(CF_METHODS),
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        gpu=GPU,
    params:
        entry="llm_influence.counterfactual.stage:retrain_leaveout",
        config=lambda wc: retrain_params(LEAVEOUT_KEYS),
    script:
        "../scripts/stage.py"


rule counterfactual:
    input:
        unpack(counterfactual_study_inputs),
        code=code_files(
            "counterfactual/__init__.py",
            "counterfactual/spec.py",
            "counterfactual/subsets.py",
            "counterfactual/lds.py",
            "counterfactual/estimators.py",
            "counterfactual/study.py",
            "attribution/__init__.py",
            "attribution/estimators.py",
            "studies",
        ),
    output:
        study=report(
            directory("results/studies/counterfactual"),
            patterns=["{name}.png"],
            caption="../report/counterfactual.rst",
            category="Validation",
        ),
    log:
        "logs/study/counterfactual.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
    params:
        entry="llm_influence.counterfactual.study:counterfactual_study",
        config=lambda wc: config_params("counterfactual"),
        metrics=["headline.json"],
    script:
        "../scripts/stage.py"


final_targets(lambda: ["results/studies/counterfactual"])
