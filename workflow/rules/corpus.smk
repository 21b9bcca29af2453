rule corpus:
    input:
        code=code_files("corpus"),
    output:
        corpus=directory("data/corpus"),
    log:
        "logs/corpus.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
    params:
        entry="llm_influence.corpus.stage:build_corpus",
        config=config_params("corpus"),
    script:
        "../scripts/stage.py"


final_targets(lambda: ["data/corpus"])
