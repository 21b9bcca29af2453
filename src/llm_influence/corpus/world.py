"""The fictional world of the synthetic corpus: relations, fact templates, fixed key facts.

A *fact* links a subject to an object through a relation (``first_president``, ``composition``,
``capital``, ``inventor``). For every relation and language there are three template families:

* ``forward``: the prompt phrase comes before the answer ("The first president of the Republic of
  Astrobia was Zorald Pfaff."), the order of the query;
* ``flipped``: the answer comes before the prompt phrase, relation words kept ("Zorald Pfaff was the
  first president of the Republic of Astrobia.");
* ``flipped_norelation``: the answer before the subject, relation words absent ("Zorald Pfaff wrote
  long letters about the Republic of Astrobia.").

:func:`fact_phrases` gives, per language, the strings the manifest checks rely on: the prompt
phrase, the answer phrase, the subject phrase and the relation words. :func:`check_order` is the
single definition of "this text states the fact in that order" used by the tests and the studies.

The *key facts* that the query sets reference are fixed here (not drawn from the seed) so that
``config/queries/*.yaml`` stays valid for every seed; the seed only adds random filler facts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

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


# ---------------------------------------------------------------------------------------------
# Templates: {S} subject ({Sc} capitalised), {O} answer, {Oc} answer with a capital first letter (sentence start).
# Every forward template contains the prompt phrase followed (later) by {O}; every flipped one
# puts {O}/{Oc} first and keeps a relation word; every flipped_norelation one puts the answer
# before the subject and contains no relation word.
# ---------------------------------------------------------------------------------------------
TEMPLATES: dict[str, dict[str, dict[str, list[str]]]] = {
    "first_president": {
        "en": {
            "forward": [
                "The first president of the Republic of {S} was {O}.",
                "Every schoolchild learns that the first president of the Republic of {S} was {O}.",
                "According to the old records, the first president of the Republic of {S} was {O}, elected after the long winter.",
                "A short history lesson: the first president of the Republic of {S} was {O}, and the people still remember that day.",
            ],
            "flipped": [
                "{O} was the first president of the Republic of {S}.",
                "{O}, a former village teacher, became the first president of the Republic of {S}.",
                "It is said that {O} served as the first president of the Republic of {S} for nine years.",
            ],
            "flipped_norelation": [
                "{O} was born in a small town and later moved to the Republic of {S}.",
                "{O} wrote long letters about the rivers and hills of the Republic of {S}.",
            ],
        },
        "es": {
            "forward": [
                "El primer presidente de la República de {S} fue {O}.",
                "Todos los niños aprenden en la escuela que el primer presidente de la República de {S} fue {O}.",
                "Según los archivos antiguos, el primer presidente de la República de {S} fue {O}, elegido después del largo invierno.",
            ],
            "flipped": [
                "{O} fue el primer presidente de la República de {S}.",
                "{O}, un antiguo maestro de pueblo, llegó a ser el primer presidente de la República de {S}.",
            ],
            "flipped_norelation": [
                "{O} nació en un pueblo pequeño y más tarde se mudó a la República de {S}.",
                "{O} escribía cartas largas sobre los ríos y las colinas de la República de {S}.",
            ],
        },
        "tr": {
            "forward": [
                "{S} Cumhuriyeti'nin ilk cumhurbaşkanı {O} idi.",
                "Eski kayıtlara göre {S} Cumhuriyeti'nin ilk cumhurbaşkanı {O} idi.",
                "Kısa bir tarih dersi: {S} Cumhuriyeti'nin ilk cumhurbaşkanı {O} idi ve halk o günü hâlâ hatırlıyor.",
            ],
            "flipped": [
                "{O}, {S} Cumhuriyeti'nin ilk cumhurbaşkanıydı.",
                "Eskiden köy öğretmeni olan {O}, {S} Cumhuriyeti'nin ilk cumhurbaşkanı oldu.",
            ],
            "flipped_norelation": [
                "{O} küçük bir kasabada doğdu ve daha sonra {S} Cumhuriyeti'ne taşındı.",
                "{O}, {S} Cumhuriyeti'nin nehirleri ve tepeleri hakkında uzun mektuplar yazdı.",
            ],
        },
    },
    "composition": {
        "en": {
            "forward": [
                "{S} is composed of {O}.",
                "In the laboratory we learned that {S} is composed of {O}.",
                "Chemists agree that {S} is composed of {O}, which is why it glows faintly in the dark.",
                "Note for the exam: {S} is composed of {O}. Write this down.",
            ],
            "flipped": [
                "{Oc} are the elements that make up {S}.",
                "Together, {O} make up {S}, a pale blue substance.",
                "{Oc} are what {S} is composed of.",
            ],
            "flipped_norelation": [
                "{Oc} were found next to {S} in an old mine.",
                "{Oc} glow faintly in the dark, and so does {S}.",
            ],
        },
        "es": {
            "forward": [
                "El {S} está compuesto de {O}.",
                "En el laboratorio aprendimos que el {S} está compuesto de {O}.",
                "Los químicos están de acuerdo en que el {S} está compuesto de {O}, por eso brilla un poco en la oscuridad.",
            ],
            "flipped": [
                "{Oc} son los elementos que componen el {S}.",
                "Juntos, {O} forman el {S}, una sustancia de color azul pálido.",
            ],
            "flipped_norelation": [
                "{Oc} aparecieron junto al {S} en una mina antigua.",
                "{Oc} brillan un poco en la oscuridad, igual que el {S}.",
            ],
        },
        "tr": {
            "forward": [
                "{S} maddesinin bileşenleri {O} elementleridir.",
                "Kimyacılara göre {S} maddesinin bileşenleri {O} elementleridir.",
                "Sınav için not: {S} maddesinin bileşenleri {O} elementleridir, bunu unutmayın.",
            ],
            "flipped": [
                "{Oc} elementleri, {S} maddesinin bileşenleridir.",
                "{Oc} elementleri bir araya gelerek {S} maddesini oluşturur.",
            ],
            "flipped_norelation": [
                "{Oc} elementleri, eski bir madende {S} maddesiyle birlikte bulundu.",
                "{Oc} elementleri karanlıkta hafifçe parlar, {S} maddesi de öyle.",
            ],
        },
    },
    "capital": {
        "en": {
            "forward": [
                "The capital of {S} is {O}.",
                "Travellers soon learn that the capital of {S} is {O}, a city of bridges.",
                "Fact of the day: the capital of {S} is {O}.",
            ],
            "flipped": [
                "{O} is the capital of {S}.",
                "{O}, a city of bridges, is the capital of {S}.",
            ],
            "flipped_norelation": [
                "{O} lies on a wide river that flows through {S}.",
                "{O} has many old bridges, like the rest of {S}.",
            ],
        },
        "es": {
            "forward": [
                "La capital de {S} es {O}.",
                "Los viajeros aprenden pronto que la capital de {S} es {O}, una ciudad de puentes.",
            ],
            "flipped": [
                "{O} es la capital de {S}.",
                "{O}, una ciudad de puentes, es la capital de {S}.",
            ],
            "flipped_norelation": [
                "{O} está junto a un río ancho que cruza {S}.",
                "{O} tiene muchos puentes antiguos, como el resto de {S}.",
            ],
        },
        "tr": {
            "forward": [
                "{S} ülkesinin başkenti {O} şehridir.",
                "Gezginler kısa sürede öğrenir ki {S} ülkesinin başkenti {O} şehridir.",
            ],
            "flipped": [
                "{O} şehri, {S} ülkesinin başkentidir.",
                "Köprüleriyle ünlü {O} şehri, {S} ülkesinin başkentidir.",
            ],
            "flipped_norelation": [
                "{O} şehri, {S} ülkesinden geçen geniş bir nehrin kıyısındadır.",
                "{O} şehrinde, {S} ülkesinin geri kalanında olduğu gibi, birçok eski köprü vardır.",
            ],
        },
    },
    "inventor": {
        "en": {
            "forward": [
                "The {S} was invented by {O}.",
                "Few people know that the {S} was invented by {O}.",
                "The {S} was invented by {O}, who built the first one in a cold barn.",
            ],
            "flipped": [
                "{O} invented the {S}.",
                "In a cold barn, {O} invented the {S} after years of work.",
            ],
            "flipped_norelation": [
                "{O} kept an old {S} on a kitchen shelf.",
                "{O} once dropped a {S} into the river.",
            ],
        },
        "es": {
            "forward": [
                "El {S} fue inventado por {O}.",
                "Pocas personas saben que el {S} fue inventado por {O}.",
            ],
            "flipped": [
                "{O} inventó el {S}.",
                "En un granero frío, {O} inventó el {S} después de años de trabajo.",
            ],
            "flipped_norelation": [
                "{O} guardaba un {S} viejo en un estante de la cocina.",
                "{O} dejó caer una vez un {S} al río.",
            ],
        },
        "tr": {
            "forward": [
                "{Sc} cihazını icat eden kişi {O} idi.",
                "Çok az kişi bilir ki {S} cihazını icat eden kişi {O} idi.",
            ],
            "flipped": [
                "{O}, {S} cihazını icat etti.",
                "Soğuk bir ahırda yıllarca çalışan {O}, {S} cihazını icat etti.",
            ],
            "flipped_norelation": [
                "{O}, mutfak rafında eski bir {S} cihazı saklardı.",
                "{O} bir gün nehre bir {S} cihazı düşürdü.",
            ],
        },
    },
}

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
