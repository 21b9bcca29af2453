rule tokenizer:
    input:
        corpus="data/corpus",
        code=code_files("models"),
    output:
        tokenizer=directory("data/tokenizer"),
    log:
        "logs/tokenizer.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
    params:
        entry="llm_influence.models.stage:train_tokenizer",
        config=config_params("tokenizer"),
    script:
        "../scripts/stage.py"


rule tokenize:
    input:
        corpus="data/corpus",
        tokenizer="data/tokenizer",
        code=code_files("models"),
    output:
        tokenized=directory("data/tokenized"),
    log:
        "logs/tokenize.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
    params:
        entry="llm_influence.models.stage:tokenize_corpus",
        config=config_params("tokenizer"),
    script:
        "../scripts/stage.py"


rule pretrain:
    input:
        corpus="data/corpus",
        tokenized="data/tokenized",
        tokenizer="data/tokenizer",
        code=code_files("models"),
    output:
        model=directory("data/models/{model}"),
    log:
        "logs/pretrain/{model}.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=8000,
        gpu=GPU,
    params:
        entry="llm_influence.models.stage:pretrain_model",
        config=lambda wc: config_params("pretrain") | {"device": config["device"]},
        metrics=["headline.json"],
        plots={"train_log.csv": {"x": "step", "y": "loss"}},
    script:
        "../scripts/stage.py"


final_targets(lambda: expand("data/models/{model}", model=config["models"]))
