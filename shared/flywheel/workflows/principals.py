"""Who is who: identities compared as the principal behind them, and approver policies."""

from __future__ import annotations

import fnmatch
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["canonical_principal", "is_listed", "same_principal"]

_ASSUMED_ROLE = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):sts::(?P<account>\d{12}):assumed-role/"
    r"(?P<role>[^/]+)/(?P<session>.+)$"
)
_IAM = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):iam::(?P<account>\d{12}):(?P<kind>role|user)/"
    r"(?:.*/)?(?P<name>[^/]+)$"
)


def canonical_principal(identity: str, *, distinct_sessions: bool = False) -> str:
    """The principal an identity stands for, for comparisons.

    An assumed-role session counts as its role (unless ``distinct_sessions``: then as
    role plus session); IAM paths are dropped; names compare case-insensitively, as IAM's
    do.  Anything else (a Cognito user, a local name) compares as itself.

    Examples
    --------
    >>> canonical_principal("arn:aws:sts::123456789012:assumed-role/ML-Engineer/ana")
    'arn:aws:iam::123456789012:role/ml-engineer'
    >>> canonical_principal("arn:aws:iam::123456789012:role/team/ml-engineer")
    'arn:aws:iam::123456789012:role/ml-engineer'
    >>> canonical_principal(
    ...     "arn:aws:sts::123456789012:assumed-role/ML-Engineer/ana", distinct_sessions=True)
    'arn:aws:iam::123456789012:role/ml-engineer/ana'
    """
    text = identity.strip()
    session = _ASSUMED_ROLE.fullmatch(text)
    if session is not None:
        base = f"arn:{session['partition']}:iam::{session['account']}:role/{session['role']}"
        if distinct_sessions:
            base = f"{base}/{session['session']}"
        return base.casefold()
    named = _IAM.fullmatch(text)
    if named is not None:
        return (
            f"arn:{named['partition']}:iam::{named['account']}:{named['kind']}/{named['name']}"
        ).casefold()
    return text.casefold()


def same_principal(a: str, b: str, *, distinct_sessions: bool = False) -> bool:
    """Whether two identities are the same principal.

    Examples
    --------
    >>> same_principal("arn:aws:sts::1:assumed-role/approver/ana".replace("1", "1" * 12),
    ...                "arn:aws:sts::111111111111:assumed-role/approver/bo")
    True
    >>> same_principal("arn:aws:iam::111111111111:user/Ana", "arn:aws:iam::111111111111:user/ana")
    True
    """
    return canonical_principal(a, distinct_sessions=distinct_sessions) == canonical_principal(
        b, distinct_sessions=distinct_sessions
    )


def is_listed(identity: str, listed: Iterable[str], *, distinct_sessions: bool = False) -> bool:
    """Whether ``identity`` is one of ``listed`` (ARNs, or patterns with ``*``).

    Examples
    --------
    >>> is_listed("arn:aws:sts::111111111111:assumed-role/approver/ana",
    ...           ["arn:aws:iam::111111111111:role/approver"])
    True
    >>> is_listed("arn:aws:iam::111111111111:user/eve", ["arn:aws:iam::111111111111:role/*"])
    False
    """
    who = canonical_principal(identity, distinct_sessions=distinct_sessions)
    return any(
        fnmatch.fnmatchcase(who, canonical_principal(entry, distinct_sessions=distinct_sessions))
        for entry in listed
    )
