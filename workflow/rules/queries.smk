rule queries:
    input:
        corpus="data/corpus",
        tokenizer="data/tokenizer",
        code=code_files("queries", "corpus", "models"),
    output:
        queries=directory("data/queries"),
    log:
        "logs/queries.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        entry="llm_influence.queries.stage:build_queries",
        config=config_params("queries"),
    script:
        "../scripts/stage.py"


final_targets(lambda: ["data/queries"])
