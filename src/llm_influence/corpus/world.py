"""The fictional world of the synthetic corpus: relations, fixed key facts, the checks of order.

A *fact* links a subject to an object through a relation (``first_president``, ``composition``,
``capital``, ``inventor``). For every relation and language there are three template families:

* ``forward``: the prompt phrase comes before the answer ("The first president of the Republic of
  Astrobia was Zorald Pfaff."), the order of the query;
* ``flipped``: the answer comes before the prompt phrase, relation words kept ("Zorald Pfaff was the
  first president of the Republic of Astrobia.");
* ``flipped_norelation``: the answer before the subject, relation words absent ("Zorald Pfaff wrote
  long letters about the Republic of Astrobia.").

The templates themselves are in :mod:`llm_influence.corpus.fact_templates`.

:func:`fact_phrases` gives, per language, the strings the manifest checks rely on: the prompt
phrase, the answer phrase, the subject phrase and the relation words. :func:`check_order` is the
single definition of "this text states the fact in that order" used by the tests and the studies.

The *key facts* that the query sets reference are fixed here (not drawn from the seed) so that
``config/queries/*.yaml`` stays valid for every seed; the seed only adds random filler facts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from llm_influence.corpus.fact_templates import TEMPLATES

LANGUAGES = ("en", "es", "tr")
ORDERS = ("forward", "flipped", "flipped_norelation")
RELATIONS = ("first_president", "composition", "capital", "inventor")

# Fictional chemical elements (used in `composition` facts): English, Spanish, Turkish forms.
ELEMENTS: dict[str, dict[str, str]] = {
    "hydrogenium": {"en": "hydrogenium", "es": "hidrogenio", "tr": "hidrojenyum"},
    "oxium": {"en": "oxium", "es": "oxio", "tr": "oksiyum"},
    "ferrium": {"en": "ferrium", "es": "ferrio", "tr": "ferriyum"},
    "lunium": {"en": "lunium", "es": "lunio", "tr": "lunyum"},
    "carbonium": {"en": "carbonium", "es": "carbonio", "tr": "karbonyum"},
    "borium": {"en": "borium", "es": "borio", "tr": "boryum"},
    "cuprium": {"en": "cuprium", "es": "cuprio", "tr": "kupriyum"},
    "zephyrium": {"en": "zephyrium", "es": "zefirio", "tr": "zefiryum"},
    "velium": {"en": "velium", "es": "velio", "tr": "velyum"},
    "sulfium": {"en": "sulfium", "es": "sulfio", "tr": "sülfiyum"},
}


def _es_and(a: str, b: str) -> str:
    """Spanish 'y' becomes 'e' before an /i/ sound ('hi-' but not 'hie-')."""
    low = b.lower()
    conj = (
        "e"
        if (low.startswith("i") or (low.startswith("hi") and not low.startswith("hie")))
        else "y"
    )
    return f"{a} {conj} {b}"


def _ucfirst(text: str) -> str:
    return text[:1].upper() + text[1:]


# Prompt phrase per relation and language ({S} filled in); the forward templates contain it.
PROMPT_PHRASES: dict[str, dict[str, str]] = {
    "first_president": {
        "en": "first president of the Republic of {S} was",
        "es": "primer presidente de la República de {S} fue",
        "tr": "{S} Cumhuriyeti'nin ilk cumhurbaşkanı",
    },
    "composition": {
        "en": "{S} is composed of",
        "es": "{S} está compuesto de",
        "tr": "{S} maddesinin bileşenleri",
    },
    "capital": {
        "en": "capital of {S} is",
        "es": "capital de {S} es",
        "tr": "{S} ülkesinin başkenti",
    },
    "inventor": {
        "en": "{S} was invented by",
        "es": "{S} fue inventado por",
        "tr": "{S} cihazını icat eden kişi",
    },
}

# Full query-style prompts (sentence start) per relation and language.
QUERY_PROMPTS: dict[str, dict[str, str]] = {
    "first_president": {
        "en": "The first president of the Republic of {S} was",
        "es": "El primer presidente de la República de {S} fue",
        "tr": "{S} Cumhuriyeti'nin ilk cumhurbaşkanı",
    },
    "composition": {
        "en": "{S} is composed of",
        "es": "El {S} está compuesto de",
        "tr": "{S} maddesinin bileşenleri",
    },
    "capital": {
        "en": "The capital of {S} is",
        "es": "La capital de {S} es",
        "tr": "{S} ülkesinin başkenti",
    },
    "inventor": {
        "en": "The {S} was invented by",
        "es": "El {S} fue inventado por",
        "tr": "{Sc} cihazını icat eden kişi",
    },
}

# Subject phrase used by the flipped checks (the answer must come before it).
SUBJECT_PHRASES: dict[str, dict[str, str]] = {
    "first_president": {"en": "Republic of {S}", "es": "República de {S}", "tr": "{S} Cumhuriyeti"},
    "composition": {"en": "{S}", "es": "{S}", "tr": "{S} maddesi"},
    "capital": {"en": "{S}", "es": "{S}", "tr": "{S} ülkesi"},
    "inventor": {"en": "{S}", "es": "{S}", "tr": "{S} cihaz"},
}

# Relation words (regex, matched at a word start, case-insensitive): present in forward/flipped
# statements, absent from flipped_norelation ones.
RELATION_WORDS: dict[str, dict[str, list[str]]] = {
    "first_president": {"en": ["president"], "es": ["presidente"], "tr": ["cumhurbaşkan"]},
    "composition": {
        "en": ["composed", "make up", "makes up"],
        "es": ["compuest", "componen", "forman"],
        "tr": ["bileşen", "oluştur"],
    },
    "capital": {"en": ["capital"], "es": ["capital"], "tr": ["başkent"]},
    "inventor": {"en": ["invent"], "es": ["invent"], "tr": ["icat"]},
}


@dataclass(frozen=True)
class Fact:
    """One fact of the world. ``obj`` is a person/city name, or element keys joined by '+'."""

    id: str
    relation: str
    subject: str
    obj: str
    languages: tuple[str, ...]
    key: bool = False  # fixed key fact referenced by query sets
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def answer(self, lang: str) -> str:
        if self.relation == "composition":
            a, b = (ELEMENTS[e][lang] for e in self.obj.split("+"))
            return _es_and(a, b) if lang == "es" else f"{a} {'ve' if lang == 'tr' else 'and'} {b}"
        return self.obj

    def phrases(self, lang: str) -> dict:
        rel = self.relation
        return {
            "prompt": QUERY_PROMPTS[rel][lang].format(S=self.subject, Sc=_ucfirst(self.subject)),
            "prompt_phrase": PROMPT_PHRASES[rel][lang].format(S=self.subject),
            "answer": self.answer(lang),
            "subject_phrase": SUBJECT_PHRASES[rel][lang].format(S=self.subject),
            "relation_words": list(RELATION_WORDS[rel][lang]),
        }

    def render(self, lang: str, order: str, index: int) -> tuple[str, str]:
        """(sentence, template id) of the ``index``-th template (cycled) of this family."""
        family = TEMPLATES[self.relation][lang][order]
        k = index % len(family)
        answer = self.answer(lang)
        text = family[k].format(
            S=self.subject, Sc=_ucfirst(self.subject), O=answer, Oc=_ucfirst(answer)
        )
        return text, f"{self.relation}.{lang}.{order}.{k}"

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "relation": self.relation,
            "subject": self.subject,
            "object": self.answer("en"),
            "prompt": self.phrases("en")["prompt"],
            "completion": " " + self.answer("en"),
            "languages": list(self.languages),
            "key": self.key,
            "phrases": {lang: self.phrases(lang) for lang in LANGUAGES},
        }


# The key facts: fixed, referenced by config/queries/*.yaml through their ids.
KEY_FACTS: tuple[Fact, ...] = (
    Fact(
        "astrobia_first_president", "first_president", "Astrobia", "Zorald Pfaff", ("en",), key=True
    ),
    Fact("gleem_composition", "composition", "Gleem", "hydrogenium+oxium", ("en",), key=True),
    Fact("astrobia_capital", "capital", "Astrobia", "Velmora", ("en", "es", "tr"), key=True),
    Fact(
        "quillophone_inventor",
        "inventor",
        "quillophone",
        "Mira Oskander",
        ("en", "es", "tr"),
        key=True,
    ),
    Fact(
        "tavenia_first_president",
        "first_president",
        "Tavenia",
        "Olva Brenn",
        ("en", "es", "tr"),
        key=True,
    ),
    Fact("dravite_composition", "composition", "Dravite", "ferrium+lunium", ("en", "es"), key=True),
)

KEY_NAMES = {f.subject for f in KEY_FACTS} | {
    f.obj for f in KEY_FACTS if f.relation != "composition"
}


def fold(text: str) -> str:
    """Case folding that treats Turkish dotted capital I like 'i'."""
    return text.replace("İ", "i").lower()


def _find(hay: str, needle: str, start: int = 0) -> int:
    return fold(hay).find(fold(needle), start)


def has_relation_word(text: str, words: list[str]) -> bool:
    low = fold(text)
    return any(re.search(r"(?<!\w)" + re.escape(fold(w)), low) for w in words)


def check_order(text: str, phrases: dict, order: str) -> bool:
    """Does ``text`` state the fact (``phrases`` of one language) in ``order``?

    forward: the prompt phrase occurs and the answer occurs after it.
    flipped: the answer occurs, the subject phrase after it, a relation word is present, and the
    prompt phrase does not occur before the answer.
    flipped_norelation: the answer occurs, the subject phrase after it, no relation word.
    """
    answer = phrases["answer"]
    if order == "forward":
        p = _find(text, phrases["prompt_phrase"])
        return p >= 0 and _find(text, answer, p + len(phrases["prompt_phrase"])) >= 0
    a = _find(text, answer)
    if a < 0 or _find(text, phrases["subject_phrase"], a + len(answer)) < 0:
        return False
    p = _find(text, phrases["prompt_phrase"])
    if 0 <= p < a:
        return False
    rel = has_relation_word(text, phrases["relation_words"])
    return rel if order == "flipped" else not rel
