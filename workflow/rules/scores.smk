# Scoring as a scatter over corpus shards, gathered into one table per model. One fused pass per
# shard: every document for every query (scores.candidates: all, as the sparsity study needs the
# whole distribution; tfidf: only the union of the TF-IDF candidates, the paper's setting),
# per-layer scores, the gradient-dot-product baseline (and plain/refined EK-FAC with
# scores.refine_steps), per-token scores of each query's top-k, TF-IDF candidates' scores.

SCORE_SHARDS = list(range(config["scores"]["shards"]))


rule score_shard:
    input:
        model="data/models/{model}",
        factors="data/factors/{model}/ekfac",
        tokenized="data/tokenized",
        queries="data/queries",
        tfidf=lambda wc: (
            "results/tfidf" if config["scores"]["candidates"] == "tfidf" else []
        ),
        code=code_files("influence", "attribution", *MODEL_LOADING),
    output:
        shard=directory("results/scores/{model}/shards/{shard}"),
    log:
        "logs/score_shard/{model}/{shard}.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=8000,
        gpu=GPU,
    params:
        entry="llm_influence.attribution.stage:score_shard",
        config=lambda wc: config_params("factors", "scores")
        | {"device": config["device"]},
    script:
        "../scripts/stage.py"


rule scores:
    input:
        model="data/models/{model}",
        shards=expand("results/scores/{{model}}/shards/{shard}", shard=SCORE_SHARDS),
        queries="data/queries",
        tfidf="results/tfidf",
        code=code_files("influence", "attribution", *MODEL_LOADING),
    output:
        table=directory("results/scores/{model}/table"),
    log:
        "logs/scores/{model}.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=8000,
    params:
        entry="llm_influence.attribution.stage:gather_scores",
        config=lambda wc: config_params("factors", "scores"),
    script:
        "../scripts/stage.py"


final_targets(lambda: expand("results/scores/{model}/table", model=config["models"]))
