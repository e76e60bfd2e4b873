"""Text pieces the embedded evaluators share: words, stems, numbers, negations, sentences.

Everything here is deterministic, English-only and dictionary-free: a light suffix
stemmer (``refunds``, ``refunded`` and ``refunding`` are one stem), a short list of
synonyms mapped to one word, contractions opened (``isn't`` is ``is not``), number words
up to twenty read as numbers, and a small background of frequent English words so
that overlap is weighted towards the words that carry a claim.

Examples
--------
>>> words("Refunds aren't issued after 30 days.")
['refunds', 'are', 'not', 'issued', 'after', '30', 'days']
>>> [stem(w) for w in ("refunds", "refunded", "refunding", "policies", "stopped")]
['refund', 'refund', 'refund', 'policy', 'stop']
>>> content_terms("Customers can purchase two seats.")
['customer', 'buy', '2', 'seat']
>>> numbers("The Pro plan costs $1,200 a year, or ten percent less, from March 3.")
['1200', '10', 'month:3', '3']
>>> split_sentences("Hi! The fee is $5.50, e.g. for exports. Is that ok?")
['Hi!', 'The fee is $5.50, e.g. for exports.', 'Is that ok?']
"""

from __future__ import annotations

import math
import re
from functools import lru_cache

__all__ = [
    "ANTONYMS",
    "NEGATIONS",
    "STOP_WORDS",
    "background_idf",
    "content_terms",
    "is_number",
    "numbers",
    "numbers_in",
    "split_sentences",
    "stem",
    "words",
]

#: Words that negate what follows them (contractions are opened to ``not`` first).
NEGATIONS = frozenset(
    {"not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "nowhere", "without",
     "cannot"}
)  # fmt: skip

#: Function words: never content, never counted as overlap.
STOP_WORDS = (
    frozenset(
        [
            "a",
            "about",
            "above",
            "after",
            "again",
            "against",
            "all",
            "am",
            "an",
            "and",
            "any",
            "are",
            "as",
            "at",
            "be",
            "because",
            "been",
            "before",
            "being",
            "below",
            "between",
            "both",
            "but",
            "by",
            "can",
            "could",
            "did",
            "do",
            "does",
            "doing",
            "down",
            "during",
            "each",
            "few",
            "for",
            "from",
            "further",
            "had",
            "has",
            "have",
            "having",
            "he",
            "her",
            "here",
            "hers",
            "herself",
            "him",
            "himself",
            "his",
            "how",
            "i",
            "if",
            "in",
            "into",
            "is",
            "it",
            "its",
            "itself",
            "just",
            "let",
            "me",
            "more",
            "most",
            "my",
            "myself",
            "of",
            "off",
            "on",
            "once",
            "only",
            "or",
            "other",
            "our",
            "ours",
            "ourselves",
            "out",
            "over",
            "own",
            "same",
            "she",
            "should",
            "so",
            "some",
            "such",
            "than",
            "that",
            "the",
            "their",
            "theirs",
            "them",
            "themselves",
            "then",
            "there",
            "these",
            "they",
            "this",
            "those",
            "through",
            "to",
            "too",
            "under",
            "until",
            "up",
            "very",
            "was",
            "we",
            "were",
            "what",
            "when",
            "where",
            "which",
            "while",
            "who",
            "whom",
            "why",
            "will",
            "with",
            "would",
            "you",
            "your",
            "yours",
            "yourself",
            "yourselves",
            "also",
            "may",
            "might",
            "must",
            "shall",
            "us",
            "via",
            "per",
            "etc",
            "ie",
            "eg",
            "yes",
            "ok",
            "okay",
            "please",
            "thanks",
            "thank",
            "hi",
            "hello",
            "hey",
            "dear",
        ]
    )
    - NEGATIONS
)

#: Pairs of words of opposite meaning (stems); a claim that uses one where its passage
#: uses the other is not supported by it.
ANTONYMS: tuple[tuple[str, str], ...] = (
    ("increase", "decrease"), ("before", "after"), ("more", "less"), ("higher", "lower"),
    ("above", "below"), ("enable", "disable"), ("allow", "forbid"), ("allow", "block"),
    ("open", "close"), ("maximum", "minimum"), ("first", "last"), ("early", "late"),
    ("include", "exclude"), ("accept", "reject"), ("add", "remove"), ("free", "paid"),
    ("success", "fail"), ("true", "false"), ("start", "end"), ("buy", "sell"),
    ("import", "export"), ("upload", "download"), ("public", "private"), ("internal", "external"),
    ("weekday", "weekend"), ("online", "offline"),
    ("faster", "slower"), ("cheaper", "expensive"), ("encrypt", "decrypt"), ("win", "lose"),
    ("required", "optional"), ("automatic", "manual"), ("inside", "outside"), ("left", "right"),
    ("least", "most"),
)  # fmt: skip

#: A few synonyms read as one word (after stemming), so common paraphrases still overlap.
SYNONYMS: dict[str, str] = {
    "purchas": "buy", "acquir": "buy", "receiv": "get", "obtain": "get", "begin": "start",
    "commenc": "start", "finish": "end", "complet": "end", "assist": "help", "requir": "need",
    "utiliz": "use", "display": "show", "repair": "fix", "resolv": "fix", "quick": "fast",
    "rapid": "fast", "larg": "big", "small": "little", "repli": "answer", "respond": "answer",
    "respons": "answer", "permit": "allow", "approximat": "about", "shut": "close",
    "terminat": "cancel", "client": "customer", "user": "customer", "cost": "price",
    "fee": "price", "charg": "price", "reimburs": "refund",
    "contact": "reach", "email": "mail", "e-mail": "mail", "modifi": "change", "alter": "change",
    "updat": "change", "delet": "remove", "eras": "remove", "creat": "make", "generat": "make",
    "employe": "staff", "personnel": "staff", "hrs": "hour", "hr": "hour", "minut": "minute",
    "min": "minute", "mins": "minute", "sec": "second", "secs": "second", "workday": "weekday",
    "dollar": "usd", "maximal": "maximum", "max": "maximum", "lowest": "minimum",
    "highest": "maximum", "disabl": "disable", "enabl": "enable", "activat": "enable",
    "deactivat": "disable", "monday": "weekday", "tuesday": "weekday", "wednesday": "weekday",
    "thursday": "weekday", "friday": "weekday", "saturday": "weekend", "sunday": "weekend",
}  # fmt: skip

_NUMBER_WORDS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
    "thirteen": "13", "fourteen": "14", "fifteen": "15", "sixteen": "16", "seventeen": "17",
    "eighteen": "18", "nineteen": "19", "twenty": "20", "thirty": "30", "forty": "40",
    "fifty": "50", "hundred": "100", "thousand": "1000", "twice": "2", "dozen": "12",
}  # fmt: skip
_MONTHS = {
    name: str(i + 1)
    for i, names in enumerate(
        ["january jan", "february feb", "march mar", "april apr", "",  # not "may" (you may)
         "june jun",
         "july jul", "august aug", "september sep sept", "october oct", "november nov",
         "december dec"]
    )
    for name in names.split()
}  # fmt: skip
_WEEKDAYS = frozenset(
    ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
)
_CONTRACTIONS = (
    (re.compile(r"\b(can)['\u2019]t\b", re.I), r"\1 not"),
    (re.compile(r"\bwon['\u2019]t\b", re.I), "will not"),
    (re.compile(r"\bshan['\u2019]t\b", re.I), "shall not"),
    (re.compile(r"n['\u2019]t\b", re.I), " not"),
    (re.compile(r"['\u2019](re|ve|ll|d|m|s)\b", re.I), ""),
)
#: Words, numbers (``1,200``, ``5.50``, ``10%``, ``24/7``) and hyphenated compounds.
_TOKEN = re.compile(r"\d+(?:[.,/:]\d+)*%?|[^\W\d_]+(?:-[^\W\d_]+)*", re.UNICODE)
_NUMBER = re.compile(r"\d+(?:[.,/:]\d+)*%?")
#: Abbreviations whose period does not end a sentence.
_ABBREVIATIONS = re.compile(
    r"\b(?:e\.g|i\.e|vs|approx|incl|dr|mr|mrs|ms|st|jr|sr|inc|ltd|fig)\.$",
    re.I,
)
_SENTENCE_END = re.compile(
    r"(?<=[.!?\u2026])[\"'\u201d\u2019)\]]*\s+|\n\s*\n|\n(?=\s*(?:[-*\u2022]|\d+[.)])\s)"
)
_LIST_MARK = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")


def words(text: str) -> list[str]:
    """Lowercase words and numbers of ``text``, contractions opened."""
    if "'" in text or "\u2019" in text:
        for pattern, replacement in _CONTRACTIONS:
            text = pattern.sub(replacement, text)
    return [_number_form(t) if t[0].isdigit() else t for t in _TOKEN.findall(text.lower())]


_THOUSANDS = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_DECIMAL = re.compile(r"\d+\.\d+")


@lru_cache(maxsize=16_384)
def _number_form(token: str) -> str:
    """``1,200`` → ``1200``, ``5.50`` → ``5.5``, ``3.0`` → ``3``; other forms as written."""
    percent = token.endswith("%")
    body = token.rstrip("%")
    if _THOUSANDS.fullmatch(body):
        body = body.replace(",", "")
    if _DECIMAL.fullmatch(body):
        body = body.rstrip("0").rstrip(".")
    elif body.isdigit():
        body = str(int(body))
    return body + ("%" if percent else "")


def is_number(token: str) -> bool:
    """Whether a word of :func:`words` is a number (digits, or a month or weekday name:
    dates and amounts are checked like numbers)."""
    return token[0].isdigit() or token in _MONTHS or token in _WEEKDAYS


def numbers(text: str) -> list[str]:
    """The numbers, dates and amounts of ``text`` in a comparable form, in order.

    Number words from two to twenty (and a few more) count, and month names (not
    ``may``) count as their number, so ``two`` matches ``2`` and ``Mar`` matches
    ``March``, never ``April``; ``10%`` is ``10``.
    """
    return numbers_in(words(text))


def numbers_in(tokens: list[str]) -> list[str]:
    """:func:`numbers` of text already split by :func:`words`."""
    found = []
    for token in tokens:
        if token[0].isdigit():
            found.append(token.rstrip("%"))
        elif token in _NUMBER_WORDS and token != "one":
            found.append(_NUMBER_WORDS[token])
        elif token in _MONTHS:
            found.append(f"month:{_MONTHS[token]}")
        elif token in _WEEKDAYS:
            found.append(f"day:{token}")
    return found


@lru_cache(maxsize=65_536)
def stem(word: str) -> str:
    """A light suffix stemmer: plural, ``-ed``, ``-ing``, ``-ly`` and a final ``e`` off,
    then the short list of synonyms. Numbers are returned as they are."""
    if not word or word[0].isdigit():
        return word
    if word in _NUMBER_WORDS:
        return _NUMBER_WORDS[word]
    w = word
    if len(w) > 3:
        if w.endswith(("ies", "ied")) and len(w) > 4:
            w = w[:-3] + "y"
        elif w.endswith("sses"):
            w = w[:-2]
        elif w.endswith("s") and not w.endswith(("ss", "us", "is")):
            w = w[:-1]
        for suffix in ("ing", "ed"):
            if w.endswith(suffix) and len(w) - len(suffix) >= 3 and re.search("[aeiouy]", w[:-3]):
                w = w[: -len(suffix)]
                if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "lsz":
                    w = w[:-1]
                break
        if w.endswith("ly") and len(w) > 5:
            w = w[:-2]
        if w.endswith("e") and len(w) > 3:
            w = w[:-1]
    return SYNONYMS.get(w, SYNONYMS.get(word, w))


def content_terms(text: str) -> list[str]:
    """The stems of ``text``'s content words (no stop words, no negations), in order."""
    return [stem(w) for w in words(text) if w not in STOP_WORDS and w not in NEGATIONS]


#: Frequent English content words (stems) and how common they are: a word's background
#: document frequency, out of :data:`BACKGROUND_DOCUMENTS` documents.
BACKGROUND_DOCUMENTS = 1000
_BACKGROUND_TIERS = (
    (
        400,
        [
            "get",
            "make",
            "use",
            "go",
            "know",
            "take",
            "see",
            "come",
            "think",
            "look",
            "want",
            "give",
            "find",
            "tell",
            "work",
            "call",
            "try",
            "ask",
            "need",
            "feel",
            "become",
            "leave",
            "put",
            "mean",
            "keep",
            "begin",
            "seem",
            "help",
            "talk",
            "turn",
            "show",
            "hear",
            "play",
            "run",
            "move",
            "like",
            "live",
            "believe",
            "hold",
            "bring",
            "happen",
            "write",
            "provide",
            "sit",
            "stand",
            "lose",
            "pay",
            "meet",
            "include",
            "continue",
            "set",
            "learn",
            "change",
            "lead",
            "understand",
            "watch",
            "follow",
            "stop",
            "speak",
            "read",
            "allow",
            "add",
            "spend",
            "grow",
            "offer",
            "remember",
            "love",
            "consider",
            "appear",
            "wait",
            "serve",
            "die",
            "send",
            "expect",
            "build",
            "stay",
            "fall",
            "cut",
            "reach",
            "kill",
            "remain",
            "suggest",
            "raise",
            "pass",
            "report",
            "decide",
            "pull",
            "new",
            "good",
            "first",
            "last",
            "long",
            "great",
            "little",
            "own",
            "old",
            "right",
            "big",
            "high",
            "different",
            "small",
            "large",
            "next",
            "early",
            "young",
            "important",
            "public",
            "bad",
            "able",
            "time",
            "year",
            "people",
            "way",
            "day",
            "man",
            "thing",
            "woman",
            "life",
            "child",
            "world",
            "school",
            "state",
            "family",
            "group",
            "country",
            "problem",
            "hand",
            "part",
            "place",
            "case",
            "week",
            "company",
            "system",
            "program",
            "question",
            "work",
            "number",
            "night",
            "point",
            "home",
            "water",
            "room",
            "area",
            "money",
            "story",
            "fact",
            "month",
            "lot",
            "study",
            "book",
            "eye",
            "job",
            "word",
            "business",
            "issue",
            "side",
            "kind",
            "head",
            "house",
            "service",
            "friend",
            "power",
            "hour",
            "game",
            "line",
            "end",
            "member",
            "law",
            "car",
            "city",
            "community",
            "name",
            "president",
            "team",
            "minute",
            "idea",
            "kid",
            "body",
            "information",
            "back",
            "parent",
            "face",
            "other",
            "level",
            "office",
            "door",
            "health",
            "person",
            "art",
            "war",
            "history",
            "party",
            "result",
            "morning",
            "reason",
            "research",
            "girl",
            "guy",
            "moment",
            "air",
            "teacher",
            "force",
            "education",
        ],
    ),
    (
        120,
        [
            "account",
            "customer",
            "price",
            "plan",
            "order",
            "support",
            "product",
            "user",
            "data",
            "file",
            "page",
            "email",
            "help",
            "request",
            "update",
            "feature",
            "access",
            "team",
            "message",
            "app",
            "site",
            "online",
            "free",
            "available",
            "time",
            "process",
            "contact",
            "detail",
            "policy",
            "option",
            "include",
            "require",
            "offer",
            "provide",
            "receive",
            "send",
            "check",
        ],
    ),
)
_BACKGROUND = {
    stem(word): count
    for count, tier in _BACKGROUND_TIERS
    for word in tier
    if word not in STOP_WORDS
}


def background_idf(term: str, documents: int, frequency: int) -> float:
    """Smoothed idf of ``term`` seen in ``frequency`` of ``documents`` passages, with the
    built-in background added: ``log((1 + n) / (1 + df)) + 1`` over both.

    Examples
    --------
    >>> round(background_idf("refund", 4, 1), 2) > round(background_idf("help", 4, 1), 2)
    True
    """
    n = documents + BACKGROUND_DOCUMENTS
    df = frequency + _BACKGROUND.get(term, 0)
    return math.log((1 + n) / (1 + df)) + 1.0


def split_sentences(text: str) -> list[str]:
    """``text`` split into sentences (and list items), stripped, none empty."""
    pieces: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        candidate = text[start : match.start()].strip()
        if candidate.endswith(".") and _ABBREVIATIONS.search(candidate) and "\n" not in match[0]:
            continue
        pieces.append(candidate)
        start = match.end()
    pieces.append(text[start:].strip())
    return [_LIST_MARK.sub("", p).strip() for p in pieces if _LIST_MARK.sub("", p).strip()]
