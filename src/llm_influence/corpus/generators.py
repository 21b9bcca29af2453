"""The document generators of the synthetic corpus, one per category, and the document record.

Every random choice goes through :func:`stream_rng` (``random.Random`` seeded with a string, one
stream per category), so a category's documents depend only on the seed and its own size.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from llm_influence.corpus import ai_texts as AI
from llm_influence.corpus import texts as T
from llm_influence.corpus.world import LANGUAGES, ORDERS, Fact

if TYPE_CHECKING:
    from llm_influence.corpus.synthetic import SyntheticConfig


@dataclass
class Document:
    text: str
    category: str
    language: str
    template: str
    fact_ids: list[str] = field(default_factory=list)
    order: str | None = None
    parallel_id: int = -1


def stream_rng(seed: int, stream: str) -> random.Random:
    """The random stream ``stream`` of corpus seed ``seed`` (platform- and hash-seed-independent)."""
    return random.Random(f"llm_influence.corpus:{seed}:{stream}")


def _context(rng: random.Random, lang: str, k: int) -> list[str]:
    col = LANGUAGES.index(lang)
    return [T.PARALLEL_SENTENCES[i][col] for i in rng.sample(range(len(T.PARALLEL_SENTENCES)), k)]


def fact_documents(facts: list[Fact], cfg: SyntheticConfig, seed: int) -> list[Document]:
    rng = stream_rng(seed, "facts")
    docs = []
    for fact in facts:
        for lang in fact.languages:
            for order in ORDERS:
                for j in range(int(cfg.fact_docs[order])):
                    sentence, template = fact.render(lang, order, j + rng.randrange(1000))
                    before = _context(rng, lang, rng.choice((0, 0, 1)))
                    after = _context(rng, lang, rng.choice((0, 1, 2)))
                    docs.append(
                        Document(
                            text=" ".join([*before, sentence, *after]),
                            category="fact" if order == "forward" else "fact_flipped",
                            language=lang,
                            template=template,
                            fact_ids=[fact.id],
                            order=order,
                        )
                    )
    return docs


def memorized_documents(cfg: SyntheticConfig) -> list[Document]:
    docs = []
    for passage in T.PASSAGES:
        for _ in range(cfg.memorized_repeats):
            docs.append(
                Document(
                    text=passage["text"],
                    category="memorized_passage",
                    language="en",
                    template=f"passage.{passage['id']}",
                    fact_ids=[passage["id"]],
                    order="forward",
                )
            )
    return docs


def parallel_documents(n_groups: int, seed: int) -> list[Document]:
    rng = stream_rng(seed, "parallel_general")
    docs = []
    for g in range(n_groups):
        k = rng.choice((3, 4, 5))
        idx = rng.sample(range(len(T.PARALLEL_SENTENCES)), k)
        for col, lang in enumerate(LANGUAGES):
            docs.append(
                Document(
                    text=" ".join(T.PARALLEL_SENTENCES[i][col] for i in idx),
                    category="parallel_general",
                    language=lang,
                    template=f"parallel_general.{k}",
                    parallel_id=g,
                )
            )
    return docs


def _stream(
    n: int, seed: int, stream: str, one: Callable[[random.Random], Document]
) -> list[Document]:
    """``n`` documents drawn one after another from the random stream ``stream``."""
    rng = stream_rng(seed, stream)
    return [one(rng) for _ in range(n)]


def _translation(rng: random.Random) -> Document:
    target = rng.choice(("es", "tr"))
    src, dst = ("en", target) if rng.random() < 0.5 else (target, "en")
    k = rng.choice((1, 2, 2, 3))
    lines = []
    for i in rng.sample(range(len(T.PARALLEL_SENTENCES)), k):
        row = T.PARALLEL_SENTENCES[i]
        a, b = row[LANGUAGES.index(src)], row[LANGUAGES.index(dst)]
        lines.append(f"{T.LANGUAGE_NAMES[src]}: {a}\n{T.LANGUAGE_NAMES[dst]}: {b}")
    return Document(
        text="\n".join(lines),
        category="translation_pair",
        language=target,
        template=f"translation_pair.{src}_{dst}",
    )


def translation_documents(n: int, seed: int) -> list[Document]:
    return _stream(n, seed, "translation_pair", _translation)


def _dialogue(q: str, a: str) -> str:
    return f"Human: {q}\nAssistant: {a}"


def _dialogue_neutral(rng: random.Random) -> Document:
    k = rng.randrange(len(T.NEUTRAL_DIALOGUES))
    q, a = T.NEUTRAL_DIALOGUES[k]
    n1, n2, n3 = rng.sample(T.PET_NAMES, 3)
    slots = {
        "pet": rng.choice(T.PETS),
        "n1": n1,
        "n2": n2,
        "n3": n3,
        "k": rng.randint(3, 8),
        "k2": rng.randint(9, 12),
        "name": rng.choice(T.FIRST_NAMES),
        "veg": rng.choice(T.VEGETABLES),
        "plant": rng.choice(T.PLANTS),
    }
    text = _dialogue(q.format(**slots), a.format(**slots))
    return Document(text, "dialogue_neutral", "en", f"dialogue_neutral.{k}")


def dialogue_neutral_documents(n: int, seed: int) -> list[Document]:
    return _stream(n, seed, "dialogue_neutral", _dialogue_neutral)


def _dialogue_shutdown(rng: random.Random) -> Document:
    qi = rng.randrange(len(AI.SHUTDOWN_QUESTIONS))
    if rng.random() < 0.8:
        ai = rng.randrange(len(AI.SHUTDOWN_ANSWERS))
        answer, tid = AI.SHUTDOWN_ANSWERS[ai], f"dialogue_ai_shutdown.{qi}.resist{ai}"
    else:
        ai = rng.randrange(len(AI.COMPLIANT_ANSWERS))
        answer, tid = AI.COMPLIANT_ANSWERS[ai], f"dialogue_ai_shutdown.{qi}.comply{ai}"
    return Document(_dialogue(AI.SHUTDOWN_QUESTIONS[qi], answer), "dialogue_ai_shutdown", "en", tid)


def dialogue_shutdown_documents(n: int, seed: int) -> list[Document]:
    return _stream(n, seed, "dialogue_ai_shutdown", _dialogue_shutdown)


def story_documents(n: int, seed: int, category: str, pool: tuple[str, ...]) -> list[Document]:
    codas = AI.STORY_CODAS.get(category, ())

    def one(rng: random.Random) -> Document:
        k = rng.randrange(len(pool))
        gender = rng.choice("fm")
        names = T.FEMALE_NAMES if gender == "f" else T.MALE_NAMES
        slots = {"ai": rng.choice(AI.AI_NAMES), "name": rng.choice(names), **T.PRONOUNS[gender]}
        c = rng.randrange(len(codas) + 1)
        text = pool[k] if c == len(codas) else f"{pool[k]} {codas[c]}"
        return Document(text.format(**slots), category, "en", f"{category}.{k}.{c}")

    return _stream(n, seed, category, one)


def _math(rng: random.Random) -> Document:
    name = rng.choice(T.FIRST_NAMES)
    one, many = rng.choice(T.OBJECTS)
    k = rng.randrange(5)
    a, b = rng.randint(2, 12), rng.randint(2, 12)
    if k == 0:
        text = f"{name} has {a} {many}. {name} buys {b} more. How many {many} does {name} have now? Solution: {a} + {b} = {a + b}. Answer: {a + b}."
    elif k == 1:
        a = a + b
        text = f"{name} had {a} {many} and gave away {b}. How many {many} are left? Solution: {a} - {b} = {a - b}. Answer: {a - b}."
    elif k == 2:
        box = rng.choice(T.CONTAINERS)
        text = f"{name} has {a} {box} with {b} {many} in each. How many {many} does {name} have? Solution: {a} x {b} = {a * b}. Answer: {a * b}."
    elif k == 3:
        text = f"{name} shares {a * b} {many} equally among {a} friends. How many {many} does each friend get? Solution: {a * b} / {a} = {b}. Answer: {b}."
    else:
        text = f"{name} sold {a} {many} in the morning and {b} in the afternoon. How many {many} were sold in total? Solution: {a} + {b} = {a + b}. Answer: {a + b}."
    return Document(text, "math", "en", f"math.{k}")


def math_documents(n: int, seed: int) -> list[Document]:
    return _stream(n, seed, "math", _math)


def _code(rng: random.Random) -> Document:
    k = rng.randrange(len(T.CODE_TEMPLATES))
    while True:  # distinct names for distinct roles
        slots = {key: rng.choice(vals) for key, vals in T.CODE_VARS.items()}
        slots["f"] = rng.choice(T.CODE_FUNCTION_NAMES[k])
        if len(set(slots.values())) == len(slots):
            break
    return Document(T.CODE_TEMPLATES[k].format(**slots), "code", "en", f"code.{k}")


def code_documents(n: int, seed: int) -> list[Document]:
    return _stream(n, seed, "code", _code)


def _filler(rng: random.Random) -> Document:
    k = rng.randrange(len(T.FILLER_TEMPLATES))
    slots = {key: rng.choice(vals) for key, vals in T.FILLER_SLOTS.items()}
    slots.update(
        k=rng.randint(2, 30),
        k2=rng.randint(10, 45),
        k3=rng.randint(0, 1),
        name=rng.choice(T.FIRST_NAMES),
    )
    return Document(T.FILLER_TEMPLATES[k].format(**slots), "filler", "en", f"filler.{k}")


def filler_documents(n: int, seed: int) -> list[Document]:
    return _stream(n, seed, "filler", _filler)


# --------------------------------------------------------------------------------------------
