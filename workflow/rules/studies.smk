# Studies: each turns the per-model score tables into figures, a metrics.json and tidy tables
# under results/studies/<study>/, registered in the Snakemake report; `summary` puts the paper's
# claims beside our numbers in results/summary.md.

STUDY_ENTRIES = {
    "sparsity": "llm_influence.studies.stage:sparsity",
    "scale": "llm_influence.studies.stage:scale",
    "crosslingual": "llm_influence.studies.stage:crosslingual",
    "roleplay": "llm_influence.studies.stage:roleplay",
    "orderflip": "llm_influence.studies.stage:orderflip",
    "layers": "llm_influence.studies.stage:layers",
    "tokens": "llm_influence.studies.stage:tokens",
    "memorisation": "llm_influence.studies.stage:memorisation",
}


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
        study="|".join(STUDY_ENTRIES),
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
    params:
        entry=lambda wc: STUDY_ENTRIES[wc.study],
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
            "validation", "influence", "models/loading.py", "models/spec.py"
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
        studies=expand("results/studies/{study}", study=[*STUDY_ENTRIES, "validation"]),
        code=code_files("studies"),
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
