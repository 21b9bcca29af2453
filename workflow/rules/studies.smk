# Studies: each turns the per-model score tables into figures, a metrics.json and tidy tables
# under results/studies/<study>/, registered in the Snakemake report; `summary` puts the paper's
# claims beside our numbers in results/summary.md. The list of studies is
# llm_influence.studies.registry.STUDIES (one place; see docs/workflow.md "Adding a stage").

SHARED_STUDIES = list(
    study_registry.SHARED
)  # run by `rule study` over the score tables
ALL_STUDIES = list(study_registry.NAMES)  # every study the summary reads


rule study:
    input:
        scores=score_tables,
        models=model_dirs,
        queries="data/queries",
        corpus="data/corpus",
        tfidf="results/tfidf",
        code=code_files("studies"),
    output:
        study=report(
            directory("results/studies/{study}"),
            patterns=["{name}.png"],
            caption="../report/studies.rst",
            category="Studies",
            subcategory="{study}",
        ),
    log:
        "logs/study/{study}.log",
    wildcard_constraints:
        study="|".join(SHARED_STUDIES),
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
    params:
        entry=lambda wc: f"llm_influence.studies.stage:{wc.study}",
        config=lambda wc: config_params("studies") | {"models": config["models"]},
        metrics=["headline.json"],
    script:
        "../scripts/stage.py"


rule validation:
    input:
        model=lambda wc: f"data/models/{config['models'][0]}",
        tokenized="data/tokenized",
        queries="data/queries",
        code=code_files(
            "validation",
            "influence",
            *MODEL_LOADING,
            "studies/__init__.py",
            "studies/figures.py",
        ),
    output:
        study=report(
            directory("results/studies/validation"),
            patterns=["{name}.png"],
            caption="../report/validation.rst",
            category="Validation",
        ),
    log:
        "logs/study/validation.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
    params:
        entry="llm_influence.validation.stage:validation_study",
        config=lambda wc: config_params("studies"),
        metrics=["headline.json"],
    script:
        "../scripts/stage.py"


rule summary:
    input:
        studies=expand("results/studies/{study}", study=ALL_STUDIES),
        # the claims of every study; the counterfactual ones name its methods (counterfactual.spec)
        code=code_files(
            "studies", "counterfactual/__init__.py", "counterfactual/spec.py"
        ),
    output:
        summary=report(
            "results/summary.md", caption="../report/summary.rst", category="Summary"
        ),
    log:
        "logs/summary.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        entry="llm_influence.studies.stage:summary",
        config=lambda wc: config_params("studies", "report")
        | {"models": config["models"]},
    script:
        "../scripts/stage.py"


final_targets(lambda: ["results/summary.md"])
