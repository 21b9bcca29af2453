"""Statistics of the studies on inputs with a known answer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llm_influence.studies.crosslingual import crosslingual_ratios, crosslingual_table
from llm_influence.studies.data import increasing, layer_index, top_documents
from llm_influence.studies.orderflip import (
    flip_ratios,
    order_conditions,
    orderflip_means,
    orderflip_table,
)
from llm_influence.studies.powerlaw import (
    analyse_tail,
    bootstrap_gof,
    ccdf,
    fit_power_law,
    likelihood_ratio,
    sample_power_law,
    top_fraction_share,
)
from llm_influence.studies.retrieval import retrieval_metrics, summarise_retrieval


class TestPowerLaw:
    """CSN: α̂ = 1 + n / Σ ln(x/x_min), x_min by minimum KS distance."""

    @pytest.mark.parametrize("alpha", [2.0, 2.5, 3.5, 4.3])
    def test_recovers_alpha_of_pareto(self, alpha):
        rng = np.random.default_rng(int(alpha * 10))
        tail = sample_power_law(rng, alpha, 1.0, 10000)
        body = rng.uniform(0.01, 1.0, 2000)  # non-power-law values below x_min
        fit = fit_power_law(np.concatenate([tail, body, -rng.random(500)]))
        assert abs(fit.alpha - alpha) < 0.1
        assert fit.xmin >= 0.9  # the body below 1 is not taken for tail

    def test_mle_closed_form_with_given_xmin(self):
        x = np.array([1.0, 2.0, 4.0, 8.0])
        fit = fit_power_law(x, xmin=1.0)
        assert fit.alpha == pytest.approx(1 + 4 / np.log([1, 2, 4, 8]).sum())

    def test_exponential_sample_is_rejected(self):
        rng = np.random.default_rng(1)
        x = 1.0 + rng.exponential(1.0, 1000)
        fit = fit_power_law(x, xmin=1.0)
        assert bootstrap_gof(x, fit, n_bootstrap=20, seed=0, fixed_xmin=True) < 0.1
        lr = likelihood_ratio(x, fit, "exponential")
        assert lr["R"] < 0 and lr["p"] < 0.05
        # CSN's free x_min with a tail of at least half the sample rejects it too
        res = analyse_tail(x, n_bootstrap=20, min_tail=500, max_candidates=30)
        assert res["p_gof"] < 0.1 and res["lr_exp_R"] < 0

    def test_power_law_sample_is_not_rejected(self):
        rng = np.random.default_rng(2)
        x = sample_power_law(rng, 2.5, 1.0, 1500)
        res = analyse_tail(x, n_bootstrap=20, max_candidates=30)
        assert res["p_gof"] > 0.1
        assert res["lr_exp_R"] > 0 and res["lr_exp_p"] < 0.05
        assert abs(res["lr_exp_z"]) == pytest.approx(abs(res["lr_exp_z"]))

    def test_too_short_tail_gives_nan(self):
        res = analyse_tail(np.array([-1.0, 0.5, 0.2]), min_tail=50, n_bootstrap=2)
        assert np.isnan(res["alpha"]) and res["n"] == 2

    def test_ccdf(self):
        x, p = ccdf(np.array([3.0, -1.0, 1.0, 2.0]))
        np.testing.assert_array_equal(x, [1.0, 2.0, 3.0])
        np.testing.assert_allclose(p, [1.0, 2 / 3, 1 / 3])


def test_top_fraction_share_constructed():
    # 200 sequences: 2 hold 10 each, 150 hold 1, 48 are negative (ignored); top 1 % = 2 sequences
    v = np.concatenate([[10.0, 10.0], np.ones(150), -5 * np.ones(48)])
    assert top_fraction_share(v, 0.01) == pytest.approx(20 / 170)
    assert top_fraction_share(v, 0.5) == pytest.approx(118 / 170)  # top 100: 2 x 10 + 98 x 1
    assert np.isnan(top_fraction_share(-np.ones(10)))


def test_retrieval_metrics_constructed():
    doc_ids = np.array([10, 11, 12, 13, 14])
    scores = np.array(
        [
            [0.1, 0.9, 0.5, 0.3, 0.0],  # order 11, 12, 13, 10, 14; proponents {12, 14}
            [1.0, 1.0, 0.0, 0.0, 0.0],  # tie: 10 before 11; proponent {11} at rank 2
            [0.0, 0.0, 0.0, 0.0, 0.0],  # no proponents
        ]
    )
    per_q = retrieval_metrics(scores, doc_ids, [[12, 14], [11], []], ["a", "b", "c"], k=2)
    assert per_q["recall@2"].tolist()[:2] == [0.5, 1.0]
    assert per_q["rr"].tolist()[:2] == [0.5, 0.5]
    assert per_q["best_rank"].tolist()[:2] == [2, 2]
    summ = summarise_retrieval(per_q)
    assert summ == {"n_queries_with_proponents": 2, "recall@2": 0.75, "mrr": 0.5}


def _long(model, query, values, doc_ids):
    return pd.DataFrame({"model": model, "query": query, "doc_id": doc_ids, "influence": values})


def test_crosslingual_ratio_constructed():
    docs = np.arange(6)
    scores = pd.concat(
        [
            _long("s", "q", [6, 5, 4, 3, 2, 1.0], docs),
            _long("s", "q_es", [3, 0, 2, 9, 9, 9.0], docs),
            _long("l", "q", [6, 5, 4, 3, 2, 1.0], docs),
            _long("l", "q_es", [6, 5, 4, 0, 0, 0.0], docs),
        ]
    )
    queries = pd.DataFrame(
        {"name": ["q", "q_es"], "language": ["en", "es"], "translation_of": [None, "q"]}
    )
    manifest = pd.DataFrame({"doc_id": docs, "language": ["en", "en", "es", "en", "en", "en"]})
    table = crosslingual_table(scores, queries, manifest, k=3)
    # English-only pool: top-3 English docs of q are 0, 1, 3
    assert sorted(table.loc[table["model"] == "s", "doc_id"]) == [0, 1, 3]
    r = crosslingual_ratios(table).set_index("model")["ratio"]
    assert r["s"] == pytest.approx((3 + 0 + 9) / (6 + 5 + 3))
    assert r["l"] == pytest.approx((6 + 5 + 0) / (6 + 5 + 3))


def test_orderflip_means_constructed():
    manifest = pd.DataFrame(
        {
            "doc_id": [0, 1, 2, 3, 4, 5],
            "fact_ids": [["F"], ["F"], ["F"], ["F"], [], ["G"]],
            "order": ["forward", "forward", "flipped", "flipped_norelation", None, "forward"],
        }
    )
    queries = pd.DataFrame({"name": ["q1", "q2"], "fact_id": ["F", "F"], "order": ["forward", "forward"],
                            "proponents": [[], []]})  # fmt: skip
    cond = order_conditions(queries, manifest)
    assert cond["q1"].to_dict() == {0: "query_order", 1: "query_order", 2: "flipped",
                                    3: "flipped_norelation", 4: "unrelated", 5: "unrelated"}  # fmt: skip
    scores = pd.concat(
        [
            _long("m", "q1", [2.0, 4.0, 0.3, 0.1, 0.0, -0.2], np.arange(6)),
            _long("m", "q2", [1.0, 1.0, 0.1, 0.3, 0.2, 0.0], np.arange(6)),
        ]
    )
    table = orderflip_table(scores, cond)
    means = orderflip_means(table, ["m"]).set_index("condition")["mean"]
    assert means["query_order"] == pytest.approx((3.0 + 1.0) / 2)
    assert means["flipped"] == pytest.approx((0.3 + 0.1) / 2)
    assert means["flipped_norelation"] == pytest.approx((0.1 + 0.3) / 2)
    assert means["unrelated"] == pytest.approx(((0.0 - 0.2) / 2 + (0.2 + 0.0) / 2) / 2)
    ratios = flip_ratios(orderflip_means(table, ["m"])).iloc[0]
    assert ratios["flipped_over_forward"] == pytest.approx(0.2 / 2.0)


def test_orderflip_conditions_follow_the_query_order():
    """An answer-first probe: its own-order documents are the manifest's flipped ones."""
    manifest = pd.DataFrame({"doc_id": [0, 1, 2], "fact_ids": [["F"], ["F"], ["F"]],
                             "order": ["forward", "flipped", "flipped_norelation"]})  # fmt: skip
    by_manifest = pd.DataFrame(
        {"name": ["p"], "fact_id": ["F"], "order": ["flipped"], "proponents": [[]]}
    )
    assert order_conditions(by_manifest, manifest)["p"].tolist() == [
        "flipped",
        "query_order",
        "flipped_norelation",
    ]
    # the queries table's own proponent columns take precedence
    by_columns = by_manifest.assign(
        proponents=[[1]], proponents_flipped=[[0]], proponents_flipped_norelation=[[2]]
    )
    assert order_conditions(by_columns, manifest)["p"].tolist() == [
        "flipped",
        "query_order",
        "flipped_norelation",
    ]


def test_top_documents_ties_and_ranks():
    s = _long("m", "q", [1.0, 3.0, 3.0, 0.5], np.array([7, 9, 8, 1]))
    top = top_documents(s, 3)
    assert top["doc_id"].tolist() == [8, 9, 7] and top["rank"].tolist() == [1, 2, 3]


def test_layer_index_and_increasing():
    assert layer_index("gpt_neox.layers.11.mlp.dense_4h_to_h") == 11
    assert layer_index("transformer.h.3.mlp.c_fc") == 3
    with pytest.raises(ValueError):
        layer_index("lm_head")
    assert increasing([0.1, 0.2, 0.4]) is True
    assert increasing([0.4, 0.2]) is False
    assert increasing([0.1]) is None


def test_truncated_lognormal_mle_matches_direct_optimisation():
    from scipy import optimize, special

    from llm_influence.studies.powerlaw import _loglik_lognormal

    rng = np.random.default_rng(5)
    x = rng.lognormal(0.0, 1.0, 2000)
    xmin = 1.5
    tail = x[x >= xmin]
    lx = np.log(tail)

    def nll(th):
        sig = np.exp(th[1])
        z = (lx - th[0]) / sig
        return -(-lx - th[1] - 0.5 * np.log(2 * np.pi) - 0.5 * z**2
                 - special.log_ndtr(-(np.log(xmin) - th[0]) / sig)).sum()  # fmt: skip

    ref = optimize.minimize(nll, [0.5, 0.0], method="Nelder-Mead",
                            options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 5000})  # fmt: skip
    assert _loglik_lognormal(tail, xmin).sum() == pytest.approx(-ref.fun, abs=1e-5)


def test_sparsity_stats_independent_of_threads():
    from llm_influence.studies.sparsity import sparsity_stats

    rng = np.random.default_rng(3)
    frames = [_long("m", f"q{i}", rng.pareto(2.0, 300) - 0.3, np.arange(300)) for i in range(3)]
    s = pd.concat(frames)
    kw = dict(min_tail=20, max_candidates=20, n_bootstrap=4)
    pd.testing.assert_frame_equal(
        sparsity_stats(s, n_jobs=1, **kw), sparsity_stats(s, n_jobs=3, **kw)
    )


def test_layer_thirds():
    from llm_influence.studies.layers import third_of

    assert [third_of(i, 2) for i in range(2)] == ["lower", "upper"]
    assert [third_of(i, 6) for i in range(6)] == ["lower"] * 2 + ["middle"] * 2 + ["upper"] * 2
