# EK-FAC fitting as a scatter/gather per model: covariance shards -> eigenbasis ->
# eigenvalue-correction shards -> damped factors. Sums with counts merge exactly, so the number
# of shards changes the cost per job, never the result.

FIT_SHARDS = list(range(config["factors"]["shards"]))


rule covariance:
    input:
        model="data/models/{model}",
        tokenized="data/tokenized",
        code=code_files("influence", "attribution", *MODEL_LOADING),
    output:
        covariance=directory("data/factors/{model}/covariance/{shard}"),
    log:
        "logs/covariance/{model}/{shard}.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=8000,
        gpu=GPU,
    params:
        entry="llm_influence.attribution.stage:fit_covariance_shard",
        config=lambda wc: config_params("factors") | {"device": config["device"]},
    script:
        "../scripts/stage.py"


rule eigen:
    input:
        covariance=expand("data/factors/{{model}}/covariance/{shard}", shard=FIT_SHARDS),
        code=code_files("influence", "attribution", *MODEL_LOADING),
    output:
        eigen=directory("data/factors/{model}/eigen"),
    log:
        "logs/eigen/{model}.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=8000,
    params:
        entry="llm_influence.attribution.stage:fit_eigenbasis",
        config=lambda wc: config_params("factors"),
    script:
        "../scripts/stage.py"


rule correction:
    input:
        model="data/models/{model}",
        tokenized="data/tokenized",
        eigen="data/factors/{model}/eigen",
        code=code_files("influence", "attribution", *MODEL_LOADING),
    output:
        correction=directory("data/factors/{model}/correction/{shard}"),
    log:
        "logs/correction/{model}/{shard}.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=8000,
        gpu=GPU,
    params:
        entry="llm_influence.attribution.stage:fit_correction_shard",
        config=lambda wc: config_params("factors") | {"device": config["device"]},
    script:
        "../scripts/stage.py"


rule factors:
    input:
        model="data/models/{model}",
        eigen="data/factors/{model}/eigen",
        correction=expand("data/factors/{{model}}/correction/{shard}", shard=FIT_SHARDS),
        code=code_files("influence", "attribution", *MODEL_LOADING),
    output:
        factors=directory("data/factors/{model}/ekfac"),
    log:
        "logs/factors/{model}.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=8000,
    params:
        entry="llm_influence.attribution.stage:assemble_factors",
        config=lambda wc: config_params("factors"),
    script:
        "../scripts/stage.py"
