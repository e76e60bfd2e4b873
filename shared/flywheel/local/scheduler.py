"""EventBridge schedule expressions: ``rate(...)`` and six-field ``cron(...)``."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_CRON = re.compile(r"^cron\((.+)\)$")
_DAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
_MONTHS = {m: i for i, m in enumerate(
    ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], 1
)}  # fmt: skip


class ScheduleError(ValueError):
    pass


def _field(text: str, low: int, high: int, names: dict[str, int] | None = None) -> set[int] | None:
    """Values a cron field allows; ``None`` for ``*`` or ``?`` (anything)."""
    if text in {"*", "?"}:
        return None
    allowed: set[int] = set()
    for item in text.split(","):
        step = 1
        part = item
        if "/" in item:
            part, step_text = item.split("/", 1)
            step = int(step_text)
        if part in {"*", ""}:
            start, end = low, high
        elif "-" in part:
            a, b = part.split("-", 1)
            start, end = _value(a, names), _value(b, names)
        else:
            start = end = _value(part, names)
            if step != 1:
                end = high
        allowed.update(range(start, end + 1, step))
    return allowed


def _value(text: str, names: dict[str, int] | None) -> int:
    if names and text.upper() in names:
        return names[text.upper()]
    return int(text)


def next_fire(expression: str, after: datetime) -> datetime:
    """The first time strictly after ``after`` at which the schedule fires.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> start = datetime(2026, 1, 5, 2, 30, tzinfo=UTC)  # a Monday
    >>> next_fire("rate(1 hour)", start).isoformat()
    '2026-01-05T03:30:00+00:00'
    >>> next_fire("cron(0 3 ? * MON *)", start).isoformat()
    '2026-01-05T03:00:00+00:00'
    """
    rate = _RATE.match(expression.strip())
    if rate:
        amount, unit = int(rate.group(1)), rate.group(2).rstrip("s")
        return after + timedelta(**{f"{unit}s": amount})
    cron = _CRON.match(expression.strip())
    if not cron:
        raise ScheduleError(f"unsupported schedule expression {expression!r}")
    fields = cron.group(1).split()
    if len(fields) != 6:
        raise ScheduleError(f"cron needs 6 fields: {expression!r}")
    minutes = _field(fields[0], 0, 59)
    hours = _field(fields[1], 0, 23)
    days = _field(fields[2], 1, 31)
    months = _field(fields[3], 1, 12, _MONTHS)
    weekdays = _field(fields[4], 1, 7, _DAYS)
    years = _field(fields[5], 1970, 2199)
    moment = (after + timedelta(minutes=1)).replace(second=0, microsecond=0)
    for _ in range(60 * 24 * 366 * 2):
        weekday = (moment.isoweekday() % 7) + 1  # cron: SUN=1 ... SAT=7
        if (
            (minutes is None or moment.minute in minutes)
            and (hours is None or moment.hour in hours)
            and (days is None or moment.day in days)
            and (months is None or moment.month in months)
            and (weekdays is None or weekday in weekdays)
            and (years is None or moment.year in years)
        ):
            return moment
        moment += timedelta(minutes=1)
    raise ScheduleError(f"{expression!r} never fires within two years")
