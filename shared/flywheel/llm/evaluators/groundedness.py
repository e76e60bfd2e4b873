"""Groundedness: the share of an answer's claim-bearing sentences its context supports.

Each sentence that makes a claim (not a question, a greeting or a pleasantry, and with
at least ``min_content_words`` content words or a number) is compared with every
passage of the context: each sentence of a context item, and each pair of adjacent
sentences. Its support by a passage is the idf-weighted share of its content words
(stemmed, a few synonyms merged) that the passage holds, the idf taken over the
context's sentences plus a small background of frequent English words. Support then
sinks to 0 when the passage lacks a number, date or amount of the sentence, when one
side is negated and the other not (``not``, ``never``, ``no``, ``n't`` ... near the
shared words), or when the sentence says a word whose opposite the passage says. A
sentence is supported when its best passage's support reaches ``support``.

Examples
--------
>>> from flywheel.llm.evaluation import EvaluationInput
>>> context = ("Refunds are issued within 14 days of a cancellation request.",
...            "The Pro plan costs $49 per month and includes 5 seats.")
>>> judge = GroundednessEvaluator()
>>> judge.evaluate(EvaluationInput(answer="The Pro plan is $49 a month.",
...                                context=context)).score
1.0
>>> scored = judge.evaluate(EvaluationInput(
...     answer="Thanks for asking! Refunds are issued within 30 days. The Pro plan "
...            "does not include seats.", context=context))
>>> scored.score, [e.note for e in scored.evidence]
(0.0, ['number 30 is not in the passage', 'negated on one side only'])
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING

from flywheel.llm.evaluation import Direction, EvaluationInput, EvaluationScore, Evidence
from flywheel.llm.evaluators.text import (
    ANTONYMS,
    NEGATIONS,
    STOP_WORDS,
    background_idf,
    is_number,
    numbers_in,
    split_sentences,
    stem,
    words,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "DEFAULT_SUPPORT",
    "DEFAULT_THRESHOLD",
    "GroundednessEvaluator",
    "SentenceSupport",
    "claim_sentences",
    "names",
]

#: The share of claim-bearing sentences that must be supported, unless told otherwise.
DEFAULT_THRESHOLD = 0.8
#: The weighted share of a sentence's content words its passage must hold.
DEFAULT_SUPPORT = 0.6
#: Sentences with fewer content words (and no number) make no claim worth checking.
DEFAULT_MIN_CONTENT_WORDS = 3
#: Content words a negation reaches: the next ones in its clause, else (``attachments
#: do not``) the ones before it in its clause.
_NEGATION_SCOPE = 3
_CLAUSE = re.compile(r"[,;:.!?()]|\s(?:but|and|or|while|whereas|although)\s", re.IGNORECASE)
#: Words that make a claim general: a passage must say one of them too.
_UNIVERSAL = frozenset({"all", "every", "any", "each", "everyone", "anyone", "everything"})
_PERIODS = frozenset(
    stem(w) for w in ("second", "minute", "hour", "day", "night", "week", "month", "quarter",
                      "year", "time", "morning", "evening", "weekday", "weekend")
)  # fmt: skip
#: Capitalised words: names when they do not start the sentence, and acronyms.
_CAPITALISED = re.compile(r"\b[A-Z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*")
_ACRONYM = re.compile(r"[A-Z]{2,}")
#: Unsupported sentences listed as evidence at most.
_MAX_EVIDENCE = 20
#: Passages checked per sentence, best support first, before it is called unsupported.
_CANDIDATES = 3
_PLEASANTRY = re.compile(
    r"^\W*(?:hi|hello|hey|dear|thanks|thank you|you're welcome|you are welcome|sure|of course|"
    r"certainly|absolutely|great question|good question|happy to help|glad to help|"
    r"i hope this helps|hope this helps|hope that helps|let me know|feel free|"
    r"best regards|kind regards|regards|cheers|good (?:morning|afternoon|evening)|"
    r"is there anything else|anything else)\b",
    re.IGNORECASE,
)
_OPPOSITES: dict[str, frozenset[str]] = {}
for _a, _b in ANTONYMS:
    _sa, _sb = stem(_a), stem(_b)
    _OPPOSITES[_sa] = _OPPOSITES.get(_sa, frozenset()) | {_sb}
    _OPPOSITES[_sb] = _OPPOSITES.get(_sb, frozenset()) | {_sa}


@dataclass(frozen=True)
class _Text:
    """A sentence or passage read once: its words, their stems, its numbers."""

    text: str
    words: tuple[str, ...]
    stems: tuple[str | None, ...]  # None for stop words and negations
    numbers: frozenset[str]
    #: The stems of every word, stop words included (``before``, ``after``, ``more``).
    every: frozenset[str]
    #: The content stems a negation reaches.
    negated: frozenset[str]

    #: The content stems.
    terms: frozenset[str]

    @classmethod
    def of(cls, text: str) -> _Text:
        found = words(text)
        stems = tuple(None if w in STOP_WORDS or w in NEGATIONS else stem(w) for w in found)
        return cls(
            text=text,
            words=tuple(found),
            stems=stems,
            numbers=frozenset(numbers_in(found)),
            every=frozenset(stem(w) for w in found),
            negated=_negated(text) if NEGATIONS.intersection(found) else frozenset(),
            terms=frozenset(s for s in stems if s is not None),
        )

    def word_for(self, term: str) -> str:
        for word, found in zip(self.words, self.stems, strict=True):
            if found == term or stem(word) == term:
                return word
        return term


def _negated(text: str) -> frozenset[str]:
    """The content stems of ``text`` that a negation reaches.

    Examples
    --------
    >>> sorted(_negated("Notes work offline, attachments do not. No card is required."))
    ['attachment', 'card', 'need']
    """
    found: set[str] = set()
    for clause in _CLAUSE.split(text):
        tokens = words(clause)
        for i, word in enumerate(tokens):
            if word not in NEGATIONS:
                continue
            after = [t for t in tokens[i + 1 :] if t not in STOP_WORDS and t not in NEGATIONS]
            before = [t for t in tokens[:i] if t not in STOP_WORDS and t not in NEGATIONS]
            reached = after[:_NEGATION_SCOPE] or before[-_NEGATION_SCOPE:]
            found.update(stem(t) for t in reached)
    return frozenset(found)


def names(sentence: str) -> list[str]:
    """The names ``sentence`` uses: capitalised words past its first word (and not right
    after a colon or a quote), and acronyms anywhere; months and weekdays are numbers.

    Examples
    --------
    >>> names("SAML works with the Munich office; Okta too.")
    ['SAML', 'Munich', 'Okta']
    """
    found = []
    first = re.search(r"[A-Za-z0-9]", sentence)
    for match in _CAPITALISED.finditer(sentence):
        word = match.group(0)
        before = sentence[: match.start()].rstrip()
        opens = first is not None and match.start() == first.start()
        if word == "I" or is_number(word.lower()):
            continue
        if _ACRONYM.match(word) or not (opens or before.endswith((":", '"', "“", "(", "-"))):
            found.append(word)
    return found


@dataclass(frozen=True)
class SentenceSupport:
    """How well the context supports one claim-bearing sentence, and why not."""

    sentence: str
    passage: str | None
    support: float
    supported: bool
    note: str | None = None
    missing: tuple[str, ...] = ()


def claim_sentences(answer: str, min_content_words: int = DEFAULT_MIN_CONTENT_WORDS) -> list[str]:
    """The sentences of ``answer`` that make a claim worth checking.

    Examples
    --------
    >>> claim_sentences("Hi there! Is it urgent? Exports over 10k rows time out. I see.")
    ['Exports over 10k rows time out.']
    """
    claims = []
    for sentence in split_sentences(answer):
        if sentence.rstrip("\"'\u201d\u2019)").endswith("?"):
            continue
        read = _Text.of(sentence)
        if _PLEASANTRY.match(sentence) and not read.numbers:
            continue
        if len(read.terms) < min_content_words and not read.numbers:
            continue
        claims.append(sentence)
    return claims


class _Passages:
    """The context's passages (sentences and adjacent pairs) and their idf."""

    def __init__(self, context: Sequence[str], question: str | None = None) -> None:
        units: list[list[_Text]] = [[_Text.of(s) for s in split_sentences(c)] for c in context]
        self._known = frozenset(w for c in (*context, question or "") for w in words(c))
        documents = [u for item in units for u in item]
        frequency: dict[str, int] = {}
        for doc in documents:
            for term in doc.terms:
                frequency[term] = frequency.get(term, 0) + 1
        self._frequency = frequency
        self._documents = len(documents)
        self._idf: dict[str, float] = {}
        passages: list[_Text] = []
        for item in units:
            passages.extend(item)
            passages.extend(_Text.of(f"{a.text} {b.text}") for a, b in pairwise(item))
        self.passages = passages

    def idf(self, term: str) -> float:
        found = self._idf.get(term)
        if found is None:
            found = background_idf(term, self._documents, self._frequency.get(term, 0))
            self._idf[term] = found
        return found

    def judge(self, sentence: str, support: float) -> SentenceSupport:
        claim = _Text.of(sentence)
        terms = claim.terms | claim.numbers
        weight = sum(self.idf(t) for t in terms) or 1.0
        ranked = sorted(
            ((sum(self.idf(t) for t in terms & (p.terms | p.numbers)) / weight, i)
             for i, p in enumerate(self.passages)),
            key=lambda pair: (-pair[0], pair[1]),
        )  # fmt: skip
        unknown = [n for n in names(sentence) if not set(words(n)) <= self._known]
        if unknown and ranked:
            share, i = ranked[0]
            return SentenceSupport(
                sentence=sentence,
                passage=self.passages[i].text,
                support=0.0,
                supported=False,
                note=f"{unknown[0]!r} is not in the context",
                missing=tuple(unknown[:8]),
            )
        first: SentenceSupport | None = None
        for share, i in ranked[:_CANDIDATES]:
            passage = self.passages[i]
            note = _mismatch(claim, passage)
            missing = tuple(
                claim.word_for(t) for t in sorted(claim.terms - passage.terms, key=self.idf)[::-1]
            )
            found = SentenceSupport(
                sentence=sentence,
                passage=passage.text,
                support=0.0 if note else share,
                supported=note is None and share >= support,
                note=note or (None if share >= support else "few of its words are in the context"),
                missing=missing[:8],
            )
            if found.supported:
                return found
            first = first or found
        return first or SentenceSupport(sentence, None, 0.0, False, "the context is empty")


def _general(found: tuple[str, ...]) -> set[str]:
    """The words of :data:`_UNIVERSAL` in ``found`` that make a claim general (not ``each
    week``, ``every 4 hours``: those say how often)."""
    return {
        word
        for word, following in zip(found, (*found[1:], ""), strict=True)
        if word in _UNIVERSAL and not (following[:1].isdigit() or stem(following) in _PERIODS)
    }


def _mismatch(claim: _Text, passage: _Text) -> str | None:
    """Why ``passage`` cannot support ``claim`` whatever their overlap, if it cannot."""
    absent = sorted(claim.numbers - passage.numbers)
    if absent:
        return f"number {absent[0].split(':')[-1]} is not in the passage"
    universal = _general(claim.words)
    if universal and not _UNIVERSAL.intersection(passage.words):
        return f"says {min(universal)!r} where the passage makes no such general claim"
    shared = claim.terms & passage.terms
    if bool(claim.negated & shared) != bool(passage.negated & shared):
        return "negated on one side only"
    for term in sorted(claim.every - passage.every):
        opposite = _OPPOSITES.get(term, frozenset()) & passage.every
        if opposite:
            said = passage.word_for(min(opposite))
            return f"says {claim.word_for(term)!r} where the passage says {said!r}"
    return None


class GroundednessEvaluator:
    """:class:`~flywheel.llm.evaluation.Evaluator` ``groundedness``: the share of the
    answer's claim-bearing sentences the context supports (higher is better); not
    applicable without context. Unsupported sentences are the evidence, each with the
    closest passage.

    Parameters
    ----------
    threshold
        The share of supported sentences an answer needs to pass.
    support
        The weighted share of a sentence's content words its passage must hold.
    min_content_words
        Sentences with fewer content words and no number are not checked.
    """

    name = "groundedness"

    def __init__(
        self,
        threshold: float = DEFAULT_THRESHOLD,
        *,
        support: float = DEFAULT_SUPPORT,
        min_content_words: int = DEFAULT_MIN_CONTENT_WORDS,
    ) -> None:
        self.threshold = threshold
        self.support = support
        self.min_content_words = min_content_words

    def sentences(self, item: EvaluationInput) -> list[SentenceSupport]:
        """Each claim-bearing sentence of the answer and how well the context supports it."""
        passages = _Passages([c for c in item.context if c.strip()], item.question)
        return [
            passages.judge(sentence, self.support)
            for sentence in claim_sentences(item.answer, self.min_content_words)
        ]

    def evaluate(self, item: EvaluationInput) -> EvaluationScore:
        if not any(c.strip() for c in item.context):
            return self._score(0.0, (Evidence(note="no context to ground the answer in"),), False)
        judged = self.sentences(item)
        if not judged:
            return self._score(1.0, (Evidence(note="no claim-bearing sentence"),), True)
        supported = sum(1 for s in judged if s.supported)
        evidence = tuple(
            Evidence(
                sentence=s.sentence,
                passage=s.passage,
                words=s.missing,
                note=s.note,
                score=min(1.0, max(0.0, s.support)),
            )
            for s in judged
            if not s.supported
        )[:_MAX_EVIDENCE]
        return self._score(supported / len(judged), evidence, True)

    def _score(
        self, score: float, evidence: tuple[Evidence, ...], applicable: bool
    ) -> EvaluationScore:
        return EvaluationScore(
            evaluator=self.name,
            score=score,
            threshold=self.threshold,
            direction=Direction.HIGHER_IS_BETTER,
            evidence=evidence,
            applicable=applicable,
        )
