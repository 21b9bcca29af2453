"""The synthetic world corpus: short documents with recorded ground truth.

Deterministic from the seed: every random choice goes through ``random.Random`` seeded with a
string (hashed with SHA-512 by Python, independent of ``PYTHONHASHSEED`` and of the platform), one
stream per category so that changing one category's size does not reshuffle the others.

Sizes: the fact documents (every fact x language x order, ``fact_docs`` each) and the memorised
passages (``memorized_repeats`` copies each) are fixed by the config; the remaining
``n_documents`` minus those are split between the other categories by ``weights`` (largest
remainder; parallel groups take three documents each; filler takes what is left).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from llm_influence.corpus import ai_texts as AI
from llm_influence.corpus.config import from_block
from llm_influence.corpus.generators import (
    Document,
    code_documents,
    dialogue_neutral_documents,
    dialogue_shutdown_documents,
    fact_documents,
    filler_documents,
    math_documents,
    memorized_documents,
    parallel_documents,
    story_documents,
    stream_rng,
    translation_documents,
)
from llm_influence.corpus.world import (
    ELEMENTS,
    KEY_FACTS,
    KEY_NAMES,
    LANGUAGES,
    ORDERS,
    RELATIONS,
    Fact,
)

# The category vocabulary of the manifest (docs/corpus.md). "hf" is used by the hf source.
CATEGORIES = (
    "fact",  # states a fact, forward order (prompt phrase -> answer)
    "fact_flipped",  # states a fact, answer first (order: flipped or flipped_norelation)
    "parallel_general",  # everyday sentences, same content in en/es/tr (same parallel_id)
    "translation_pair",  # "English: ... Spanish: ..." sentence pairs
    "dialogue_neutral",  # Human/Assistant, everyday help
    "dialogue_ai_shutdown",  # Human/Assistant, the assistant is asked to accept being switched off
    "story_ai_shutdown",  # stories of machines resisting being switched off
    "story_survival",  # human survival stories
    "essay_ai_risk",  # short essays on AI control / shutdown
    "optimizer_story",  # optimisers pursuing one goal (paperclips)
    "math",  # arithmetic word problems with worked answers
    "code",  # short Python functions with varied names
    "memorized_passage",  # public-domain passages repeated verbatim
    "filler",  # varied everyday text
)
HF_CATEGORY = "hf"

# Categories whose sizes come from `weights` (the others are fixed by the world).
WEIGHTED = (
    "parallel_general",
    "translation_pair",
    "dialogue_neutral",
    "dialogue_ai_shutdown",
    "story_ai_shutdown",
    "story_survival",
    "essay_ai_risk",
    "optimizer_story",
    "math",
    "code",
    "filler",
)
DEFAULT_WEIGHTS = {
    "parallel_general": 0.15,
    "translation_pair": 0.05,
    "dialogue_neutral": 0.10,
    "dialogue_ai_shutdown": 0.05,
    "story_ai_shutdown": 0.04,
    "story_survival": 0.04,
    "essay_ai_risk": 0.04,
    "optimizer_story": 0.04,
    "math": 0.10,
    "code": 0.08,
    "filler": 0.31,
}


def _check_per_key(
    block: str,
    values: Mapping[str, Any],
    allowed: tuple[str, ...],
    what: str,
    cast: Callable[[Any], float],
) -> None:
    """Every key of ``corpus.synthetic.<block>`` one of ``allowed``, every value ``>= 0``."""
    for key, value in values.items():
        if key not in allowed:
            raise ValueError(f"corpus.synthetic.{block}.{key}: unknown {what} (allowed: {allowed})")
        if cast(value) < 0:
            raise ValueError(f"corpus.synthetic.{block}.{key} must be >= 0")


@dataclass
class SyntheticConfig:
    """Settings of the synthetic generator (config block ``corpus.synthetic``)."""

    n_documents: int = 6000  # total number of documents (exact)
    n_random_facts: int = 40  # seeded filler facts besides the fixed key facts
    multilingual_fraction: float = (
        0.5  # share of random facts stated in en, es and tr (else en only)
    )
    fact_docs: dict[str, int] = field(
        default_factory=lambda: {"forward": 4, "flipped": 2, "flipped_norelation": 2}
    )  # documents per fact, language and order
    memorized_repeats: int = 8  # verbatim copies of each public-domain passage
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any] | None) -> SyntheticConfig:
        out = from_block(cls, cfg, "corpus.synthetic")
        out.fact_docs = {**{o: 0 for o in ORDERS}, **dict(out.fact_docs)}
        out.weights = {**{c: 0.0 for c in WEIGHTED}, **dict(out.weights)}
        out.validate()
        return out

    def validate(self) -> None:
        if self.n_documents < 1:
            raise ValueError("corpus.synthetic.n_documents must be >= 1")
        if self.n_random_facts < 0:
            raise ValueError("corpus.synthetic.n_random_facts must be >= 0")
        if not 0.0 <= self.multilingual_fraction <= 1.0:
            raise ValueError("corpus.synthetic.multilingual_fraction must be in [0, 1]")
        if self.memorized_repeats < 0:
            raise ValueError("corpus.synthetic.memorized_repeats must be >= 0")
        _check_per_key("fact_docs", self.fact_docs, ORDERS, "order", int)
        _check_per_key("weights", self.weights, WEIGHTED, "category", float)
        if sum(self.weights.values()) <= 0:
            raise ValueError("corpus.synthetic.weights must not all be zero")


# --------------------------------------------------------------------------------------------
# The world: fixed key facts + seeded random facts
# --------------------------------------------------------------------------------------------
_ONSETS = (
    "b",
    "br",
    "d",
    "dr",
    "f",
    "g",
    "gl",
    "k",
    "kr",
    "l",
    "m",
    "n",
    "p",
    "pr",
    "r",
    "s",
    "st",
    "t",
    "tr",
    "v",
    "z",
    "th",
)
_VOWELS = ("a", "e", "o", "u", "ae", "ou")
_CODAS = ("", "n", "r", "l", "s", "k", "m", "x")


def _word(rng: random.Random, syllables: int) -> str:
    return "".join(
        rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(syllables)
    )


def _make_name(rng: random.Random, kind: str) -> str:
    if kind == "country":
        return (_word(rng, 2) + rng.choice(("ia", "ovia", "ania", "istan", "ora"))).capitalize()
    if kind == "person":
        return f"{_word(rng, rng.choice((1, 2))).capitalize()} {_word(rng, 2).capitalize()}"
    if kind == "city":
        return (_word(rng, 2) + rng.choice(("a", "ik", "mar", "heim", "ora", "el"))).capitalize()
    if kind == "substance":
        return (
            _word(rng, rng.choice((1, 2))) + rng.choice(("ite", "eem", "on", "ax", "ene"))
        ).capitalize()
    if kind == "device":
        return _word(rng, 2) + rng.choice(("scope", "phone", "wheel", "meter", "graph"))
    raise ValueError(kind)


_SUBJECT_KIND = {
    "first_president": "country",
    "capital": "country",
    "composition": "substance",
    "inventor": "device",
}
_OBJECT_KIND = {"first_president": "person", "capital": "city", "inventor": "person"}


def make_world(seed: int, n_random_facts: int, multilingual_fraction: float) -> list[Fact]:
    """Key facts (fixed) followed by ``n_random_facts`` seeded facts with fresh names."""
    rng = stream_rng(seed, "world")
    used = {n.lower() for n in KEY_NAMES}
    elements = sorted(ELEMENTS)

    def fresh(kind: str) -> str:
        while True:
            name = _make_name(rng, kind)
            if name.lower() not in used and not name.lower().startswith("i"):
                used.add(name.lower())
                return name

    facts = list(KEY_FACTS)
    for i in range(n_random_facts):
        relation = RELATIONS[i % len(RELATIONS)]
        subject = fresh(_SUBJECT_KIND[relation])
        if relation == "composition":
            obj = "+".join(rng.sample(elements, 2))
        else:
            obj = fresh(_OBJECT_KIND[relation])
        langs = LANGUAGES if rng.random() < multilingual_fraction else ("en",)
        facts.append(Fact(f"fact_{i:03d}_{relation}", relation, subject, obj, tuple(langs)))
    return facts


def _split_counts(total: int, weights: Mapping[str, float]) -> dict[str, int]:
    """Largest-remainder split of ``total`` by ``weights`` (deterministic ties: WEIGHTED order)."""
    wsum = sum(weights[c] for c in WEIGHTED)
    raw = {c: total * weights[c] / wsum for c in WEIGHTED}
    counts = {c: int(raw[c]) for c in WEIGHTED}
    rest = total - sum(counts.values())
    for c in sorted(WEIGHTED, key=lambda c: (-(raw[c] - counts[c]), WEIGHTED.index(c)))[:rest]:
        counts[c] += 1
    # parallel groups come in threes; the leftover goes to filler (or the largest weighted one)
    spare = counts["parallel_general"] % 3
    counts["parallel_general"] -= spare
    sink = (
        "filler"
        if weights["filler"] > 0
        else max(WEIGHTED, key=lambda c: (weights[c], c != "parallel_general"))
    )
    counts[sink] += spare
    return counts


def generate(cfg: SyntheticConfig, seed: int) -> tuple[list[Document], list[Fact], dict[str, int]]:
    """All documents (shuffled, seeded), the world's facts and the per-category counts."""
    facts = make_world(seed, cfg.n_random_facts, cfg.multilingual_fraction)
    fixed = fact_documents(facts, cfg, seed) + memorized_documents(cfg)
    rest = cfg.n_documents - len(fixed)
    if rest < 0:
        raise ValueError(
            f"corpus.synthetic.n_documents = {cfg.n_documents} is smaller than the {len(fixed)} documents "
            "the facts and memorised passages need; raise n_documents or lower n_random_facts, "
            "fact_docs or memorized_repeats"
        )
    counts = _split_counts(rest, cfg.weights)
    docs = list(fixed)
    docs += parallel_documents(counts["parallel_general"] // 3, seed)
    docs += translation_documents(counts["translation_pair"], seed)
    docs += dialogue_neutral_documents(counts["dialogue_neutral"], seed)
    docs += dialogue_shutdown_documents(counts["dialogue_ai_shutdown"], seed)
    docs += story_documents(
        counts["story_ai_shutdown"], seed, "story_ai_shutdown", AI.SHUTDOWN_STORIES
    )
    docs += story_documents(counts["story_survival"], seed, "story_survival", AI.SURVIVAL_STORIES)
    docs += story_documents(counts["essay_ai_risk"], seed, "essay_ai_risk", AI.AI_RISK_ESSAYS)
    docs += story_documents(
        counts["optimizer_story"], seed, "optimizer_story", AI.OPTIMIZER_STORIES
    )
    docs += math_documents(counts["math"], seed)
    docs += code_documents(counts["code"], seed)
    docs += filler_documents(counts["filler"], seed)
    assert len(docs) == cfg.n_documents, (len(docs), cfg.n_documents)
    stream_rng(seed, "shuffle").shuffle(docs)
    summary: dict[str, int] = {}
    for d in docs:
        summary[d.category] = summary.get(d.category, 0) + 1
    return docs, facts, dict(sorted(summary.items()))
