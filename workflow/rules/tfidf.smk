rule tfidf:
    input:
        corpus="data/corpus",
        tokenized="data/tokenized",
        queries="data/queries",
        code=code_files("tfidf", "studies/__init__.py", "studies/retrieval.py"),
    output:
        tfidf=directory("results/tfidf"),
    log:
        "logs/tfidf.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
    params:
        entry="llm_influence.tfidf.stage:build_candidates",
        config=config_params("tfidf"),
        metrics=["headline.json"],
    script:
        "../scripts/stage.py"


final_targets(lambda: ["results/tfidf"])
