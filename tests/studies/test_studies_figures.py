"""Each figure function returns a Figure with a title and axis labels; PNGs are byte-stable."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest
from matplotlib.figure import Figure

from llm_influence.artifacts.queries import read_queries
from llm_influence.artifacts.scores import load_tables
from llm_influence.studies import data as D
from llm_influence.studies.crosslingual import plot_crosslingual
from llm_influence.studies.figures import save_figure
from llm_influence.studies.layers import plot_layers
from llm_influence.studies.memorisation import memorisation_shares, plot_memorisation
from llm_influence.studies.orderflip import plot_orderflip
from llm_influence.studies.registry import SHARED
from llm_influence.studies.roleplay import category_shares, plot_categories
from llm_influence.studies.scale import plot_relation_shares
from llm_influence.studies.sparsity import ccdf_frame, plot_sparsity
from llm_influence.studies.tokens import plot_tokens

MODELS = ["tiny", "small"]  # as in conftest.MODELS


def _builders(artifacts, study_dirs):
    tables = load_tables(MODELS, artifacts["scores"])
    scores = D.scores_frame(tables)
    small = scores[scores["model"] == "small"]
    stats = pd.read_parquet(study_dirs["sparsity"] / "stats.parquet")
    cand = pd.read_parquet(artifacts["tfidf"] / "candidates.parquet")
    queries = read_queries(artifacts["queries"])
    kinds = {n: D.query_kind(t) for n, t in zip(queries["name"], queries["tags"])}
    tok = pd.read_parquet(artifacts["scores"][0] / "tokens.parquet")
    rp_top = pd.read_parquet(study_dirs["roleplay"] / "top.parquet")
    mem_top = pd.read_parquet(study_dirs["memorisation"] / "top.parquet")
    return {
        "sparsity": lambda: plot_sparsity(ccdf_frame(small, cand), stats[stats["model"] == "small"],
                                          title="tails", queries=["first_president"]),  # fmt: skip
        "scale": lambda: plot_relation_shares(pd.read_parquet(study_dirs["scale"] / "shares.parquet"), "scale"),
        "roleplay": lambda: plot_categories(category_shares(rp_top, MODELS), "roleplay"),
        "crosslingual": lambda: plot_crosslingual(pd.read_parquet(study_dirs["crosslingual"] / "pairs.parquet"), "cl"),
        "orderflip": lambda: plot_orderflip(pd.read_parquet(study_dirs["orderflip"] / "docs.parquet"), "flip"),
        "layers": lambda: plot_layers(pd.read_parquet(study_dirs["layers"] / "profiles.parquet"), kinds, "layers"),
        "tokens": lambda: plot_tokens(tok, "tokens"),
        "memorisation": lambda: plot_memorisation(memorisation_shares(mem_top, MODELS), "mem"),
    }  # fmt: skip


@pytest.mark.parametrize("name", SHARED)  # every study of the shared rule draws
def test_figure(artifacts, study_dirs, tmp_path, name):
    build = _builders(artifacts, study_dirs)[name]
    fig = build()
    assert isinstance(fig, Figure)
    axes = [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]
    assert axes
    titles = [ax.get_title() for ax in axes] + [fig._suptitle.get_text() if fig._suptitle else ""]
    assert any(titles)
    for ax in axes:
        assert ax.get_xlabel() and ax.get_ylabel(), ax
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    save_figure(fig, a)
    save_figure(build(), b)  # a fresh figure from the same data gives the same bytes
    assert a.stat().st_size > 1000
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()
