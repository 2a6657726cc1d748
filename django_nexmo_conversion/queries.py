"""Reads: what the command, the admin and the dashboard show."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING

from django.db.models import Q, Sum
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .conf import get_settings
from .models import Conversion, ConversionAttempt, ConversionStat, Outcome, Status
from .rollups import by_status
from .transport import answers

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise


def _due_query(include_failed: bool) -> Q:
    query = Q(pk__in=Conversion.objects.due(timezone.now()).values("pk"))
    if include_failed:
        query |= Q(status=Status.FAILED)
    return query


def due_conversions(*, limit: int | None = None, include_failed: bool = False) -> list[Conversion]:
    """What a report run would take now, oldest due first."""
    rows = (
        Conversion.objects.filter(_due_query(include_failed))
        .select_related("message")
        .order_by("next_attempt_at", "pk")
    )
    return list(rows[:limit] if limit is not None else rows)


def count_due(*, limit: int | None = None, include_failed: bool = False) -> int:
    """How many conversions a report run would take now (one COUNT, no rows loaded)."""
    count = Conversion.objects.filter(_due_query(include_failed)).count()
    return count if limit is None else min(count, limit)


# --- admin and dashboard ----------------------------------------------------------------------

#: The dashboard's periods, newest first: (key, length).
WINDOWS: tuple[tuple[str, timedelta], ...] = (
    ("24h", timedelta(hours=24)),
    ("7d", timedelta(days=7)),
    ("30d", timedelta(days=30)),
)
WINDOW_LABELS: dict[str, StrOrPromise] = {
    "24h": _("Last 24 hours"),
    "7d": _("Last 7 days"),
    "30d": _("Last 30 days"),
}


def _answer_kinds() -> dict[str, Q]:
    """Each kind of last answer as a filter over ``last_status_code``, built from the outcome
    table's own status sets (``transport.answers``; tests hold the two to each other)."""
    code = "last_status_code"
    redirects = answers.REDIRECTS
    return {
        "ok": Q(**{code: 200}),
        "account": Q(**{f"{code}__in": sorted(answers.ACCOUNT_STATUSES)}),
        "endpoint": Q(**{f"{code}__in": sorted(answers.ENDPOINT_STATUSES)})
        | Q(**{f"{code}__gte": redirects.start, f"{code}__lt": redirects.stop}),
        "throttled": Q(**{code: 429}),
        "server": Q(**{f"{code}__in": sorted(answers.TRANSIENT_STATUSES - {429})})
        | Q(**{f"{code}__gte": 500}),
    }


def last_answer_query(kind: str | None) -> Q | None:
    """Conversions whose last answer from Nexmo was of this kind (the admin's "last answer"
    filter): ``ok``, ``account`` (401/402), ``endpoint`` (403/404/405/406/415 or a redirect:
    both stop reporting), ``rejected`` (any other answer: the parameters), ``throttled`` (429),
    ``server`` (5xx, 408) or ``none`` (no HTTP answer: timeout, connection error, or not tried
    yet). None for an unknown kind. Every HTTP status falls in exactly one kind."""
    kinds = _answer_kinds()
    if kind == "rejected":
        # Whatever no other kind takes, as ``classify`` files it: never a status in no kind.
        other = Q()
        for query in kinds.values():
            other |= query
        return Q(last_status_code__isnull=False) & ~other
    if kind == "none":
        return Q(last_status_code__isnull=True)
    return kinds.get(kind or "")


def last_answer_kind(status_code: int | None) -> str:
    """The :func:`last_answer_query` kind an HTTP status falls in."""
    if status_code is None:
        return "none"
    outcome = answers.outcome_of(status_code)
    if outcome == Outcome.TRANSIENT:
        return "throttled" if status_code == 429 else "server"
    return _KIND_OF_OUTCOME[outcome]


_KIND_OF_OUTCOME = {
    Outcome.REPORTED: "ok",
    Outcome.ACCOUNT_ERROR: "account",
    Outcome.ENDPOINT_ERROR: "endpoint",
    Outcome.REJECTED: "rejected",
}


def status_counts() -> dict[str, int]:
    """How many conversions are in each status (every status present, zeros included).

    From the status counts the sweeps keep, plus the rows changed since (``statuses``): the
    same cost at any number of conversions.
    """
    return by_status.totals()


@dataclass(frozen=True)
class WindowCounts:
    """Conversions *marked* in a period (``created_at``, from its whole hour), by their
    status now."""

    key: str
    label: StrOrPromise
    marked: int
    reported: int
    failed: int

    @property
    def waiting(self) -> int:
        """Pending or being sent."""
        return self.marked - self.reported - self.failed


def window_counts(*, now: datetime | None = None) -> list[WindowCounts]:
    """Marked / reported / failed for each of :data:`WINDOWS`, in one query over the status
    counts of their hours (``by_status.totals_since``)."""
    now = now or timezone.now()
    periods = by_status.totals_since(*(now - length for _key, length in WINDOWS))
    return [
        WindowCounts(
            key=key,
            label=WINDOW_LABELS[key],
            marked=sum(counts.values()),
            reported=counts[Status.REPORTED],
            failed=counts[Status.FAILED],
        )
        for (key, _length), counts in zip(WINDOWS, periods, strict=True)
    ]


@dataclass(frozen=True)
class DayRate:
    """One day of the conversion-rate chart."""

    day: date
    #: Messages sent that day (the first part of a multipart SMS stands for the whole send).
    sent: int
    #: Of those, how many have a conversion with ``delivered=True``.
    converted: int

    @property
    def rate(self) -> float | None:
        """``converted / sent``, or None on a day nothing was sent."""
        return self.converted / self.sent if self.sent else None


def daily_conversion_rates(
    *,
    days: int = 30,
    now: datetime | None = None,
    country: str | None = None,
    network: str | None = None,
) -> list[DayRate]:
    """The conversion rate of each of the last ``days`` days, oldest first, today included;
    of one ``country`` or ``network`` when given (the Insights page's chart).

    Read from the hourly rollups (``ConversionStat``): one query over at most ``24 * days``
    hours per destination, whatever the number of messages. Days are calendar days in the
    current time zone, cut at the hours the rollups keep (exact in any whole-hour zone,
    daylight-saving changes included).
    """
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days!r}.")
    now = timezone.localtime(now or timezone.now())
    today = now.date()
    zone = timezone.get_current_timezone()
    day_list = [today - timedelta(days=offset) for offset in range(days - 1, -1, -1)]
    start = timezone.make_aware(datetime.combine(day_list[0], time.min), zone)
    end = timezone.make_aware(datetime.combine(today + timedelta(days=1), time.min), zone)
    destination = {
        field: value for field, value in (("country", country), ("network", network)) if value
    }
    rows = (
        ConversionStat.objects.filter(hour__gte=start, hour__lt=end, **destination)
        .order_by()
        .values("hour")
        .annotate(sent=Sum("sent"), converted=Sum("converted"))
    )
    found: dict[date, list[int]] = {day: [0, 0] for day in day_list}
    for row in rows:
        counts = found.get(timezone.localtime(row["hour"], zone).date())
        if counts is not None:
            counts[0] += row["sent"] or 0
            counts[1] += row["converted"] or 0
    return [DayRate(day=day, sent=found[day][0], converted=found[day][1]) for day in day_list]


@dataclass(frozen=True)
class FailureReason:
    status_code: int | None
    error: str
    count: int


#: How many of the newest failures :func:`top_failure_reasons` reads.
FAILURE_SAMPLE = 1000


def top_failure_reasons(*, limit: int = 5, sample: int = FAILURE_SAMPLE) -> list[FailureReason]:
    """The most common (last HTTP status, last error) among the newest ``sample`` failed
    conversions: what is going wrong now, read at the same cost however many failures the
    table has kept."""
    newest = (
        Conversion.objects.filter(status=Status.FAILED)
        .order_by("-pk")
        .values_list("last_status_code", "last_error")[:sample]
    )
    counted = Counter(newest)
    ranked = sorted(counted.items(), key=lambda item: (-item[1], item[0][0] or 0, item[0][1]))
    return [
        FailureReason(status_code=code, error=error, count=n) for (code, error), n in ranked[:limit]
    ]


@dataclass(frozen=True)
class Halt:
    """Reporting stopped by an account error (for ``api_key``) or an endpoint error (for every
    account), and not followed by a successful report of the same scope."""

    outcome: str
    status_code: int
    error: str
    at: datetime
    api_key: str | None = None

    @property
    def endpoint(self) -> bool:
        """An endpoint error (403/404/405/406/415, a redirect): every account is stopped."""
        return self.outcome == Outcome.ENDPOINT_ERROR


def account_scopes(*, through: str = "") -> dict[str, Q]:
    """The conversions each account reports, by its API key, as ``ConversionSettings.
    account_for`` picks it: a key of ``ACCOUNTS`` its own messages, the default account every
    other message. A halt stops one of these, so only a report in the same scope lifts it.
    ``through`` is the path to the conversion from the model filtered (``"conversion__"``)."""
    conf = get_settings()
    field = f"{through}message__api_key"
    keys = list(conf.accounts)
    scopes = {key: Q(**{field: key}) for key in keys}
    if conf.default_account is not None:
        others = ~Q(**{f"{field}__in": keys}) if keys else Q()
        key = conf.default_account.api_key
        scopes[key] = scopes[key] | others if key in scopes else others
    return scopes or {"": Q()}


def _account_of(api_key: str) -> str:
    """The :func:`account_scopes` key a message sent with ``api_key`` is reported under."""
    conf = get_settings()
    if api_key in conf.accounts:
        return api_key
    return conf.default_account.api_key if conf.default_account is not None else ""


#: The outcomes that stop reporting (an account, or every account).
HALTING = (Outcome.ACCOUNT_ERROR, Outcome.ENDPOINT_ERROR)


def current_halts() -> list[Halt]:
    """The halts in effect, newest first: an endpoint error (403/404/405/406/415, 3xx), which
    stops every account, or else each account whose newest halting answer was an account error
    (401/402) — in both cases when nothing of its scope was reported since (anything for an
    endpoint error, the account's own conversions for an account error).

    Derived from the data, so every process sees the same answer with no extra state. One
    probe of the attempts' ``(outcome, started_at)`` index finds the newest halting attempt (no
    halt: that is all); then, per account, its newest one and whether a report followed it
    (the ``reported_at`` index). An endpoint error superseded by a later answer says nothing.
    """
    halting = ConversionAttempt.objects.filter(outcome__in=HALTING).order_by("-started_at")
    fields = ("outcome", "http_status", "error", "started_at", "conversion__message__api_key")
    newest = halting.values_list(*fields).first()
    if newest is None:
        return []
    outcome, status_code, error, at, api_key = newest
    endpoint_halted = outcome == Outcome.ENDPOINT_ERROR
    if endpoint_halted and not Conversion.objects.filter(reported_at__gt=at).exists():
        return [Halt(outcome=outcome, status_code=status_code, error=error, at=at)]
    reported = account_scopes()
    newest_account = _account_of(api_key)
    halts = []
    for key, attempts_scope in account_scopes(through="conversion__").items():
        if key == newest_account:
            row = newest  # the newest of all is its own account's newest: no second probe
        else:
            row = halting.filter(attempts_scope).values_list(*fields).first()
        if row is None or row[0] != Outcome.ACCOUNT_ERROR:
            continue
        kind, code, text, since = row[:4]
        if not Conversion.objects.filter(reported[key], reported_at__gt=since).exists():
            halts.append(Halt(outcome=kind, status_code=code, error=text, at=since, api_key=key))
    return sorted(halts, key=lambda halt: halt.at, reverse=True)
