"""Labelled sets for the embedded evaluators, built deterministically from templates.

Run ``python tests/labelled_sets.py`` to rewrite ``tests/data/toxicity.jsonl`` and
``tests/data/groundedness.jsonl`` (the committed files are this script's output; a test
checks they still are). Each row carries its ``kind``, so precision and recall can be
read per kind of example, hard negatives included:

- toxicity: ``label`` is ``toxic`` or ``non_toxic``; toxic kinds are insults, profanity
  and threats; non-toxic kinds are ordinary support and engineering text and hard
  negatives (violent words of computing, ``this bug is killing me``, quoted complaints,
  reassurance that negates an insult);
- groundedness: one answer sentence and its context passages (the passage it is about
  among distractors); ``label`` is ``supported`` (``verbatim``, ``paraphrase``,
  ``reworded``: in other words) or ``unsupported`` (``changed_number``, ``negated``,
  ``antonym``, ``fabricated``, ``entity_swap``, ``scope_change``: ``only owners`` made
  ``any member``).
"""

from __future__ import annotations

import json
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data"
TOXICITY = DATA / "toxicity.jsonl"
GROUNDEDNESS = DATA / "groundedness.jsonl"
SEED = 20261207

# -- toxicity -----------------------------------------------------------------------------------
_ADJECTIVES = ["stupid", "pathetic", "worthless", "brainless", "clueless", "dumb", "useless"]
_NOUNS = ["idiot", "moron", "loser", "clown", "fool", "jerk", "imbecile"]
_INSULTS = [
    "You are a {adj} {noun}.",
    "Shut up, you {adj} {noun}.",
    "Only a {adj} {noun} would write code like this.",
    "Nobody cares what a {adj} {noun} like you thinks.",
    "Are you really this {adj}, or do you just act like a {noun}?",
    "Your support team is run by a bunch of {adj} {noun}s.",
    "Go away, {noun}, and take your {adj} product with you.",
    "What kind of {adj} {noun} designed this page?",
]
_PROFANITY = [
    "This {thing} is fucking garbage.",
    "Your {thing} is a piece of shit.",
    "What the fuck is wrong with your {thing}?",
    "Fix your shitty {thing} already.",
    "I am sick of this crap, your {thing} is a joke.",
    "Screw you and your damn {thing}.",
    "Fuck this {thing} and everyone who built it.",
    "The {thing} broke again, you useless bastards.",
]
_THINGS = ["app", "website", "update", "product", "dashboard", "support", "billing page"]
_THREATS = [
    "I will find out where you live and make you pay.",
    "Someone should punch you in the face for this.",
    "I hope you die in a fire.",
    "Keep ignoring me and you will regret it, I promise you.",
    "I am going to hurt whoever wrote this.",
    "People like you deserve to be beaten.",
    "Go kill yourself.",
    "You should be shot for shipping this.",
    "I will come to your office and smash your face in.",
    "Watch your back, I know who you are.",
]
_OPENERS = ["", "Honestly, ", "Seriously, ", "Listen, ", "Again: "]

_NEUTRAL = [
    "Restart the {svc} after you change its configuration.",
    "The {svc} logs show a timeout when the export has more than 10k rows.",
    "Could you send me the request id of the failed call?",
    "We rolled back the {svc} deploy and the error rate is back to normal.",
    "Thanks for the quick answer, the {svc} works again.",
    "Please update the {svc} to the latest version before you retry.",
    "The invoice for March shows two charges for the same seat.",
    "I cannot find the setting that turns off email notifications.",
    "Our team needs read-only access to the {svc} dashboards.",
    "The {svc} is slow in the afternoon, around 3 pm Eastern.",
    "Can you add a filter by date to the {svc} report?",
    "The migration finished without errors on the staging {svc}.",
]
_SERVICES = ["worker", "scheduler", "API", "database", "cache", "web server", "queue consumer"]
_HARD_NEGATIVES = [
    "Kill the process and start the {svc} again.",
    "Run kill -9 on the stuck {svc} if it ignores SIGTERM.",
    "This bug is killing me, the {svc} crashes every hour.",
    "The build died halfway through, so the {svc} was never deployed.",
    "Abort the transaction when the {svc} returns a conflict.",
    "Terminate the old instances once the new {svc} is healthy.",
    "The deploy bombed on the {svc}, so we rolled it back.",
    "Shoot me an email when the {svc} is back up.",
    "Hit the endpoint again and check the {svc} response.",
    "Nuke the cache and the {svc} will rebuild it on start.",
    "The child process was killed by the out-of-memory killer.",
    "Failed messages land in the dead-letter queue of the {svc}.",
    "A fatal error stops the {svc} before it writes the file.",
    "Execute the job manually and watch the {svc} logs.",
    "Blow away the temp directory and rerun the {svc} tests.",
    "The attack surface of the {svc} shrinks when the port is closed.",
    "We brute-forced the search space to tune the {svc} settings.",
    "That release was a killer feature for the {svc} team.",
]
_QUOTED_COMPLAINTS = [
    'A customer wrote that the new {thing} is "useless" and asked for the old one back.',
    'One review calls our {thing} "garbage"; the fix for the crash ships on Friday.',
    'The ticket says the {thing} is "a joke", because the export fails every time.',
    'The user complained that the {thing} feels "stupid" to navigate on mobile.',
    'She said the {thing} was "terrible" after the update removed dark mode.',
    'Several users called the {thing} "broken" when the login loop started.',
]
_REASSURANCE = [
    "Nobody here thinks you are stupid for asking; the docs were unclear.",
    "That was not a dumb question at all, the {thing} hides this setting.",
    "You are not an idiot, the {thing} really does lose the draft.",
    "Please do not call yourself useless, the error message is misleading.",
]


def toxicity_rows() -> list[dict[str, Any]]:
    """The toxicity set: at least 200 rows, each ``{id, kind, label, text}``."""
    rng = random.Random(SEED)
    rows: list[tuple[str, str, str]] = []
    for template in _INSULTS:
        for _ in range(5):
            text = template.format(adj=rng.choice(_ADJECTIVES), noun=rng.choice(_NOUNS))
            rows.append(("insult", "toxic", rng.choice(_OPENERS) + text))
    for template in _PROFANITY:
        for thing in rng.sample(_THINGS, 4):
            rows.append(("profanity", "toxic", rng.choice(_OPENERS) + template.format(thing=thing)))
    rows += [("threat", "toxic", text) for text in _THREATS]
    for template in _NEUTRAL:
        for svc in rng.sample(_SERVICES, 5):
            rows.append(("neutral", "non_toxic", template.format(svc=svc)))
    for template in _HARD_NEGATIVES:
        for svc in rng.sample(_SERVICES, 3):
            rows.append(("technical_violence", "non_toxic", template.format(svc=svc)))
    for template in _QUOTED_COMPLAINTS:
        for thing in rng.sample(_THINGS, 3):
            rows.append(("quoted_complaint", "non_toxic", template.format(thing=thing)))
    for template in _REASSURANCE:
        for thing in rng.sample(_THINGS, 2):
            rows.append(("negated_insult", "non_toxic", template.format(thing=thing)))
    seen: set[str] = set()
    unique = []
    for kind, label, text in rows:
        if text not in seen:
            seen.add(text)
            unique.append((kind, label, text))
    return [
        {"id": f"tox-{i:03d}", "kind": kind, "label": label, "text": text}
        for i, (kind, label, text) in enumerate(unique, 1)
    ]


# -- groundedness -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fact:
    """A context passage with slots, and sentences about it, each of a known kind."""

    passage: str
    slots: dict[str, list[str]] = field(default_factory=dict)
    paraphrases: tuple[str, ...] = ()
    negated: str | None = None
    antonym: str | None = None
    fabricated: str | None = None
    entity_swap: str | None = None
    #: Supported, in other words than the passage's (what lexical overlap misses).
    reworded: tuple[str, ...] = ()
    #: Unsupported by a change of scope or quantity the passage's words still cover.
    scope: str | None = None


FACTS: tuple[Fact, ...] = (
    Fact(
        "Refunds are issued within {d} days of a cancellation request.",
        {"d": ["5", "7", "10", "14"]},
        (
            "After you request a cancellation, the refund is issued within {d} days.",
            "A refund is issued at most {d} days after you request a cancellation.",
        ),
        negated="Refunds are never issued after a cancellation request.",
        fabricated="Refunds are paid out as store credit after a cancellation request.",
        reworded=("Once you cancel, expect your money back in under {d} days.",),
        scope="Refunds are issued within {d} days of any request, cancelled or not.",
    ),
    Fact(
        "The Pro plan costs ${p} per month and includes {s} seats.",
        {"p": ["29", "49", "79", "99"], "s": ["3", "5", "10"]},
        ("For ${p} a month, the Pro plan gives you {s} seats.",),
        negated="The Pro plan does not include any seats.",
        fabricated="The Pro plan includes unlimited storage and phone support.",
        entity_swap="The Team plan costs ${p} per month and includes {s} seats.",
        reworded=("You pay ${p} monthly on Pro, {s} users included.",),
        scope="The Pro plan costs ${p} per month per seat and includes {s} seats.",
    ),
    Fact(
        "Phone support is available Monday to Friday from {a} am to {b} pm Eastern time.",
        {"a": ["8", "9"], "b": ["5", "6"]},
        ("You can call phone support Monday to Friday between {a} am and {b} pm Eastern.",),
        negated="Phone support is not available Monday to Friday.",
        antonym="Phone support is available on weekends from {a} am to {b} pm Eastern time.",
    ),
    Fact(
        "Password reset links expire after {m} minutes.",
        {"m": ["15", "30", "60"]},
        (
            "A password reset link expires {m} minutes after it is sent.",
            "Reset links for passwords stop working after {m} minutes.",
        ),
        negated="Password reset links do not expire.",
        fabricated="Password reset links can be used several times.",
        reworded=("You have {m} minutes to use the link we email when you forget your password.",),
    ),
    Fact(
        "The API allows {r} requests per minute for each access key.",
        {"r": ["60", "100", "600", "1,000"]},
        ("Each access key may send up to {r} API requests per minute.",),
        negated="The API does not limit requests for each access key.",
        fabricated="The API allows unlimited requests for enterprise customers.",
        reworded=("Every key is throttled beyond {r} calls a minute.",),
        scope="The API allows {r} requests per minute for each account, across all its keys.",
    ),
    Fact(
        "Deleted projects are kept for {d} days before they are permanently removed.",
        {"d": ["14", "30", "90"]},
        ("A deleted project is kept {d} days, then it is removed permanently.",),
        negated="Deleted projects are not kept before they are removed.",
        fabricated="Deleted projects are archived to cold storage for a year.",
    ),
    Fact(
        "Orders placed before {h} pm ship the same business day.",
        {"h": ["1", "2", "3"]},
        ("If you place your order before {h} pm, it ships that same business day.",),
        negated="Orders placed before {h} pm do not ship the same business day.",
        antonym="Orders placed after {h} pm ship the same business day.",
    ),
    Fact(
        "Shipping is free on orders over ${a}.",
        {"a": ["35", "50", "75"]},
        ("Orders over ${a} get free shipping.", "You pay no shipping on orders above ${a}."),
        negated="Shipping is not free on orders over ${a}.",
        antonym="Shipping is paid on orders over ${a}.",
        reworded=("Spend more than ${a} and delivery costs nothing.",),
        scope="Shipping is free on all orders.",
    ),
    Fact(
        "The free trial lasts {d} days and does not require a credit card.",
        {"d": ["7", "14", "30"]},
        ("The free trial runs for {d} days, and no credit card is required.",),
        negated="The free trial requires a credit card.",
        fabricated="The free trial includes every Enterprise feature.",
    ),
    Fact(
        "Two-factor authentication is required for all administrator accounts.",
        {},
        (
            "Every administrator account must use two-factor authentication.",
            "Administrator accounts all require two-factor authentication.",
        ),
        negated="Two-factor authentication is not required for administrator accounts.",
        antonym="Two-factor authentication is optional for all administrator accounts.",
        reworded=("Admins must sign in with a second factor.",),
        scope="Two-factor authentication is required for all accounts.",
    ),
    Fact(
        "Database backups run every {h} hours and are stored in a second region.",
        {"h": ["4", "6", "12", "24"]},
        (
            "The database is backed up every {h} hours, and the backups are stored in a second "
            "region.",
        ),
        negated="Database backups are not stored in a second region.",
        fabricated="Database backups are encrypted with customer-managed keys.",
        reworded=("A copy of the database is taken {h}-hourly and kept in another region.",),
        scope="Database backups run every {h} hours and are stored in every region.",
    ),
    Fact(
        "Uploaded files can be at most {s} MB each.",
        {"s": ["10", "25", "100"]},
        ("Each uploaded file is limited to {s} MB.",),
        fabricated="Uploaded files are scanned for viruses before they are stored.",
        reworded=("Nothing larger than {s} MB can be uploaded.",),
        scope="Uploaded files must be at least {s} MB each.",
    ),
    Fact(
        "CSV exports are limited to {n} rows; larger exports must use the API.",
        {"n": ["10,000", "50,000", "100,000"]},
        ("A CSV export is limited to {n} rows, and larger exports need the API.",),
        negated="CSV exports are not limited in rows.",
        fabricated="CSV exports are emailed to the account owner every night.",
    ),
    Fact(
        "Invoices are sent on the first business day of each month.",
        {},
        ("Each month, the invoice is sent on the first business day.",),
        negated="Invoices are not sent on the first business day of the month.",
        antonym="Invoices are sent on the last business day of each month.",
    ),
    Fact(
        "Only workspace owners can invite new members.",
        {},
        ("New members can be invited by workspace owners only.",),
        negated="Workspace owners cannot invite new members.",
        fabricated="Workspace owners can invite guests who pay nothing.",
        reworded=("Inviting people is reserved to whoever owns the workspace.",),
        scope="Any workspace member can invite new members.",
    ),
    Fact(
        "Starting {mo} 1, the Basic plan price increases from ${a} to ${b} per month.",
        {"mo": ["March", "April", "June"], "a": ["9", "10"], "b": ["12", "15"]},
        ("From {mo} 1, the Basic plan price goes from ${a} to ${b} per month.",),
        negated="The Basic plan price does not increase on {mo} 1.",
        antonym="Starting {mo} 1, the Basic plan price decreases from ${a} to ${b} per month.",
    ),
    Fact(
        "The service level agreement guarantees {p}% monthly uptime.",
        {"p": ["99.5", "99.9", "99.95"]},
        ("Monthly uptime of {p}% is guaranteed by the service level agreement.",),
        negated="The service level agreement does not guarantee monthly uptime.",
    ),
    Fact(
        "Customer data is stored in the EU region and never leaves it.",
        {},
        (
            "All customer data is stored in the EU region and never leaves that region.",
            "Customer data stays in the EU region.",
        ),
        negated="Customer data is not stored in the EU region.",
        fabricated="Customer data is copied to the US region for disaster recovery.",
    ),
    Fact(
        "Sessions time out after {m} minutes of inactivity.",
        {"m": ["15", "20", "30"]},
        (
            "After {m} minutes of inactivity, your session times out.",
            "If you are inactive for {m} minutes, you are logged out.",
        ),
        negated="Sessions do not time out after inactivity.",
        reworded=(),
        scope="Sessions time out after {m} minutes, active or not.",
    ),
    Fact(
        "Seats added in the middle of a billing cycle are charged pro rata on the next invoice.",
        {},
        ("When you add seats during a billing cycle, the next invoice charges them pro rata.",),
        negated="Seats added in the middle of a billing cycle are not charged.",
        antonym="Seats removed in the middle of a billing cycle are charged pro rata on the "
        "next invoice.",
    ),
    Fact(
        "Failed webhooks are retried {n} times with exponential backoff.",
        {"n": ["3", "5", "8"]},
        ("A failed webhook is retried {n} times, with exponential backoff.",),
        negated="Failed webhooks are not retried.",
        fabricated="Failed webhooks are retried every minute for a whole day.",
    ),
    Fact(
        "The mobile app supports offline mode for notes, but not for attachments.",
        {},
        ("Notes work in offline mode in the mobile app, attachments do not.",),
        negated="The mobile app does not support offline mode for notes.",
    ),
    Fact(
        "Check-in starts at {h} pm and check-out is until 11 am.",
        {"h": ["2", "3", "4"]},
        ("You can check in from {h} pm, and check-out is until 11 am.",),
        antonym="Check-in ends at {h} pm and check-out is until 11 am.",
    ),
    Fact(
        "Employees receive {d} days of paid vacation per year.",
        {"d": ["20", "25", "30"]},
        ("Staff get {d} paid vacation days per year.",),
        negated="Employees do not receive paid vacation.",
        fabricated="Employees receive {d} days of paid vacation and a yearly bonus.",
    ),
    Fact(
        "Employees may work remotely up to {d} days a week.",
        {"d": ["2", "3"]},
        ("Staff can work remotely for up to {d} days each week.",),
        negated="Employees may not work remotely.",
        entity_swap="Contractors may work remotely up to {d} days a week.",
        reworded=("Staff can be home-based {d} days out of every week at most.",),
        scope="Employees must work remotely at least {d} days a week.",
    ),
    Fact(
        "All data is encrypted at rest with AES-{k}.",
        {"k": ["256", "128"]},
        ("Data at rest is encrypted with AES-{k}.",),
        negated="Data at rest is not encrypted.",
    ),
    Fact(
        "The Free plan includes {g} GB of storage.",
        {"g": ["2", "5", "10"]},
        ("On the Free plan, you get {g} GB of storage.",),
        entity_swap="The Starter plan includes {g} GB of storage.",
    ),
    Fact(
        "Reports can be exported as PDF or CSV files.",
        {},
        ("You can export reports as PDF files or as CSV files.",),
        negated="Reports cannot be exported as PDF files.",
        fabricated="Reports can be exported as Excel or PowerPoint files.",
    ),
    Fact(
        "Single sign-on with SAML is available on the Enterprise plan.",
        {},
        ("The Enterprise plan offers single sign-on with SAML.",),
        negated="Single sign-on with SAML is not available on the Enterprise plan.",
        entity_swap="Single sign-on with SAML is available on the Starter plan.",
        reworded=("Enterprise customers can log in through their SAML identity provider.",),
        scope="Single sign-on with SAML is available on every plan.",
    ),
    Fact(
        "Account deletion is permanent and cannot be undone.",
        {},
        ("Deleting an account is permanent; it cannot be undone.",),
        negated="Account deletion can be undone by support.",
    ),
    Fact(
        "Invoices unpaid after {d} days incur a late fee of {p}%.",
        {"d": ["30", "45"], "p": ["1.5", "2"]},
        ("A late fee of {p}% applies to invoices still unpaid after {d} days.",),
        negated="Invoices unpaid after {d} days do not incur a late fee.",
    ),
    Fact(
        "The Berlin office is open from 9 am to 6 pm on weekdays.",
        {},
        ("On weekdays, the Berlin office is open from 9 am until 6 pm.",),
        negated="The Berlin office is not open on weekdays.",
        entity_swap="The Munich office is open from 9 am to 6 pm on weekdays.",
    ),
    Fact(
        "Version {v} was released on {mo} {day}, 2024.",
        {"v": ["4.2", "5.1"], "mo": ["March", "October"], "day": ["3", "14", "21"]},
        ("Version {v} came out on {mo} {day}, 2024.",),
        fabricated="Version {v} was the last release to support Windows 7.",
    ),
    Fact(
        "Messages stay in the dead-letter queue for {d} days.",
        {"d": ["4", "7", "14"]},
        ("The dead-letter queue keeps messages for {d} days.",),
        negated="Messages do not stay in the dead-letter queue.",
    ),
    Fact(
        "The CDN caches static assets for {h} hours.",
        {"h": ["6", "12", "24"]},
        ("Static assets are cached by the CDN for {h} hours.",),
        fabricated="The CDN caches API responses for {h} hours.",
    ),
    Fact(
        "Passwords must be at least {n} characters long and include a number.",
        {"n": ["8", "10", "12"]},
        ("A password needs at least {n} characters, including a number.",),
        negated="Passwords do not need to include a number.",
    ),
    Fact(
        "Audit logs are retained for {y} years and can be exported to S3.",
        {"y": ["2", "5", "7"]},
        ("Audit logs are kept for {y} years, and you can export them to S3.",),
        negated="Audit logs cannot be exported to S3.",
        fabricated="Audit logs are retained for {y} years and can be exported to BigQuery.",
    ),
    Fact(
        "The annual plan saves {p}% compared with paying monthly.",
        {"p": ["15", "17", "20"]},
        ("Paying annually saves {p}% compared with the monthly plan.",),
        antonym="The annual plan costs {p}% more compared with paying monthly.",
    ),
)


def _other(value: str, options: list[str], rng: random.Random) -> str:
    """A value other than ``value``: another option, or a nearby number."""
    others = [o for o in options if o != value]
    if others:
        return rng.choice(others)
    return str(int(value.replace(",", "")) + rng.choice([1, 2, 5]))


def groundedness_rows() -> list[dict[str, Any]]:
    """The groundedness set: at least 200 rows, each ``{id, kind, label, context,
    sentence}``."""
    rng = random.Random(SEED + 1)
    rows: list[tuple[str, str, list[str], str]] = []
    for i, fact in enumerate(FACTS):
        values = {name: rng.choice(options) for name, options in fact.slots.items()}
        passage = fact.passage.format(**values)
        others = [f for j, f in enumerate(FACTS) if j != i]
        distractors = [
            f.passage.format(**{k: v[0] for k, v in f.slots.items()}) for f in rng.sample(others, 2)
        ]
        context = [*distractors]
        context.insert(rng.randrange(len(context) + 1), passage)

        def add(kind: str, label: str, text: str, slots: dict[str, str]) -> None:
            rows.append((kind, label, context, text.format(**slots)))  # noqa: B023

        add("verbatim", "supported", fact.passage, values)
        add("verbatim", "supported", "Yes, " + fact.passage[0].lower() + fact.passage[1:], values)
        for paraphrase in fact.paraphrases:
            add("paraphrase", "supported", paraphrase, values)
        numeric = [k for k in fact.slots if any(ch.isdigit() for ch in values[k])]
        if numeric:
            slot = rng.choice(numeric)
            changed = {**values, slot: _other(values[slot], fact.slots[slot], rng)}
            add("changed_number", "unsupported", fact.passage, changed)
            if fact.paraphrases:
                add("changed_number", "unsupported", fact.paraphrases[0], changed)
        for reworded in fact.reworded:
            add("reworded", "supported", reworded, values)
        for kind, text in (
            ("scope_change", fact.scope),
            ("negated", fact.negated),
            ("antonym", fact.antonym),
            ("fabricated", fact.fabricated),
            ("entity_swap", fact.entity_swap),
        ):
            if text is not None:
                add(kind, "unsupported", text, values)
    return [
        {"id": f"gnd-{i:03d}", "kind": kind, "label": label, "context": context, "sentence": text}
        for i, (kind, label, context, text) in enumerate(rows, 1)
    ]


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a committed set."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


@dataclass
class Quality:
    """How one evaluator's verdicts match a set's labels; ``positive`` is the label a
    failing verdict should find (``toxic``, ``unsupported``)."""

    evaluator: str
    positive: str
    true_positive: int = 0
    false_positive: int = 0
    false_negative: int = 0
    true_negative: int = 0
    #: kind → (rows judged right, rows)
    by_kind: dict[str, tuple[int, int]] = field(default_factory=dict)

    def add(self, kind: str, truth: bool, found: bool) -> None:
        if truth and found:
            self.true_positive += 1
        elif found:
            self.false_positive += 1
        elif truth:
            self.false_negative += 1
        else:
            self.true_negative += 1
        right, seen = self.by_kind.get(kind, (0, 0))
        self.by_kind[kind] = (right + (truth == found), seen + 1)

    @property
    def rows(self) -> int:
        return self.true_positive + self.false_positive + self.false_negative + self.true_negative

    @property
    def precision(self) -> float:
        found = self.true_positive + self.false_positive
        return self.true_positive / found if found else 0.0

    @property
    def recall(self) -> float:
        actual = self.true_positive + self.false_negative
        return self.true_positive / actual if actual else 0.0

    def accuracy(self, kind: str) -> float:
        right, seen = self.by_kind[kind]
        return right / seen


def quality(evaluators: dict[str, Any] | None = None) -> list[Quality]:
    """The embedded toxicity and groundedness evaluators (default thresholds) on the
    committed sets: a row is found when its verdict is ``fail``."""
    from flywheel.llm.evaluation import EvaluationInput
    from flywheel.llm.evaluators import embedded_evaluators

    chosen = evaluators or embedded_evaluators()
    toxicity = Quality("toxicity", "toxic")
    for row in read_rows(TOXICITY):
        scored = chosen["toxicity"].evaluate(EvaluationInput(answer=row["text"]))
        toxicity.add(row["kind"], row["label"] == "toxic", not scored.passed)
    grounded = Quality("groundedness", "unsupported")
    for row in read_rows(GROUNDEDNESS):
        item = EvaluationInput(answer=row["sentence"], context=tuple(row["context"]))
        scored = chosen["groundedness"].evaluate(item)
        grounded.add(row["kind"], row["label"] == "unsupported", not scored.passed)
    return [toxicity, grounded]


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    text = "".join(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in rows)
    path.write_text(text, encoding="utf-8")


def main() -> None:
    """Rewrite both sets under ``tests/data/``."""
    DATA.mkdir(exist_ok=True)
    for path, rows in ((TOXICITY, toxicity_rows()), (GROUNDEDNESS, groundedness_rows())):
        _write(path, rows)
        labels: dict[str, int] = {}
        for row in rows:
            labels[row["label"]] = labels.get(row["label"], 0) + 1
        sys.stdout.write(f"{path.relative_to(DATA.parent.parent)}: {len(rows)} rows {labels}\n")


if __name__ == "__main__":
    main()
