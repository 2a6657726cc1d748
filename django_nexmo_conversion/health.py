"""Is reporting healthy? The findings that ``conversion_status``, the django-health-check
check and the Prometheus collector all show, judged in one place.

Everything is read from the tables at the moment of asking, so every process (and a cron job
on another host) sees the same answer with no state of its own. Each read is served by an
index and bounded by what it looks for (due rows, expired leases, the last hour's attempts),
never by the size of the tables.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count
from django.utils import timezone

from .choices import Outcome, Status
from .conf import Thresholds, get_settings, setting
from .guard.recent import refused_since
from .models import Conversion, ConversionAttempt
from .queries import Halt, current_halts
from .transport.answers import halt_fix

OK, WARNING, CRITICAL = "ok", "warning", "critical"
#: Nagios / monitoring-plugins exit statuses.
EXIT_CODES = {OK: 0, WARNING: 1, CRITICAL: 2}
_RANK = {OK: 0, WARNING: 1, CRITICAL: 2}

#: Where low-conversion alerts come from, when that module is installed (the insights
#: feature). A module path, not an import, so this module works without it.
ALERT_SOURCE = "django_nexmo_conversion.insights"
#: "Failures in the last hour": attempts that did not report. Account errors are left out:
#: they halt reporting, which is its own (critical) finding.
FAILURE_OUTCOMES = (Outcome.REJECTED, Outcome.TRANSIENT)
FAILURE_WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class Finding:
    """One thing checked: ``check`` names it, ``level`` is ok / warning / critical, ``value``
    the number it was judged on (None when it has none). The message never holds a secret or
    a phone number."""

    check: str
    level: str
    message: str
    value: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def oldest_due(now: datetime) -> datetime | None:
    """When the conversion that has waited longest became due (a pending row's due time, or a
    dead worker's lease expiry), or None when nothing is due."""
    firsts = [
        Conversion.objects.filter(status=status, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first()
        for status in (Status.PENDING, Status.SENDING)  # one index range each, read in order
    ]
    due = [first for first in firsts if first is not None]
    return min(due) if due else None


def expired_leases(now: datetime) -> int:
    """Rows still ``sending`` whose lease has run out: their worker died, or hung past
    ``LEASE_SECONDS``. The next report run takes them over."""
    return Conversion.objects.filter(status=Status.SENDING, next_attempt_at__lte=now).count()


def attempts_since(since: datetime) -> dict[str, int]:
    """Attempts started since ``since``, by outcome (every outcome present, zeros included).

    ``started_at`` has no index, and attempts are appended in about the order they start; so
    the newest attempt older than ``since`` is found walking the primary key backwards, and
    the count covers the rows after it. The cost follows the attempts in the window, not the
    size of the table. An attempt that was slow to be written and landed after a newer one
    (by at most ``TIMEOUT``) may be left out at the window's start edge.
    """
    boundary = (
        ConversionAttempt.objects.filter(started_at__lt=since)
        .order_by("-pk")
        .values_list("pk", flat=True)
        .first()
    )
    rows = ConversionAttempt.objects.filter(started_at__gte=since)
    if boundary is not None:
        rows = rows.filter(pk__gt=boundary)
    counts = dict.fromkeys(Outcome.values, 0)
    for outcome, n in rows.order_by().values_list("outcome").annotate(n=Count("pk")):
        counts[outcome] = n
    return counts


def insight_alerts(now: datetime) -> list[Any]:
    """The insights feature's low-conversion alerts, or none when it is not installed. Read
    only (a health check is a GET; the sweeps record alerts and send the signal)."""
    if importlib.util.find_spec(ALERT_SOURCE) is None:
        return []
    source = importlib.import_module(ALERT_SOURCE)
    return list(source.current_alerts(now=now))


def counted_freshness(now: datetime) -> Any | None:
    """What the counted figures (rates, alerts) are current to (``insights.freshness``), or
    None when the insights feature is not installed."""
    if importlib.util.find_spec(ALERT_SOURCE) is None:
        return None
    return importlib.import_module(ALERT_SOURCE).freshness(now=now)


def window_text(seconds: float) -> str:
    """A duration for people ("42 seconds", "24 hours"), as the insights feature says it
    (translated when a language is active)."""
    if importlib.util.find_spec(ALERT_SOURCE) is None:
        return _duration(seconds)
    return str(importlib.import_module(ALERT_SOURCE).duration_text(seconds))


def level_of(value: float, limits: Thresholds) -> str:
    """The level ``value`` reaches against (warning, critical) thresholds."""
    warning, critical = limits
    if critical is not None and value >= critical:
        return CRITICAL
    if warning is not None and value >= warning:
        return WARNING
    return OK


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _halted(halt: Halt, *, public: bool = False) -> str:
    fix = halt_fix(halt.outcome, halt.status_code)
    if halt.endpoint:
        scope = "every account"
    else:
        scope = "an account" if public else f"API key {halt.api_key or '-'}"
    # A public page says what happened, never which account: not the key, nor Nexmo's words
    # (an error text may quote the key back).
    cause = f"HTTP {halt.status_code}" if public else halt.error.rstrip(".")
    return (
        f"Reporting halted for {scope} since {halt.at:%Y-%m-%d %H:%M:%S %Z}: "
        f"{cause}{' (' + fix + ')' if fix else ''}. Conversions wait, "
        "nothing is lost; once this is fixed the next run reports them."
    )


def findings(now: datetime | None = None, *, public: bool = False) -> list[Finding]:
    """Every finding, in a fixed order: halt, oldest due, expired leases, failures, what the
    counted figures are current to (``counted``, always ok), then one per low-conversion
    alert. ``public``: for a page anyone may read (the health check), which says that an
    account is halted but not which one."""
    now = now or timezone.now()
    conf = get_settings()
    found: list[Finding] = []

    halts = current_halts()
    if not halts:
        found.append(Finding("halt", OK, "Reporting is not halted.", 0))
    else:
        # The error text is built by the client from Nexmo's answer, secrets redacted; the
        # meaning says what to fix, whatever words Nexmo chose.
        text = " ".join(_halted(halt, public=public) for halt in halts)
        found.append(Finding("halt", CRITICAL, text, len(halts)))

    first_due = oldest_due(now)
    waited = max(0.0, (now - first_due).total_seconds()) if first_due else 0.0
    level = level_of(waited, conf.status_oldest_due)
    message = (
        f"The oldest due conversion has waited {window_text(waited)}."
        if first_due
        else "No conversion is waiting to be reported."
    )
    if level != OK:
        message += (
            " Is anything reporting (the background reporter, report_conversions --loop, a "
            f"queue worker)? Thresholds: {setting('STATUS_OLDEST_DUE')}."
        )
    found.append(Finding("oldest_due", level, message, waited))

    expired = expired_leases(now)
    level = level_of(expired, conf.status_expired_leases)
    message = f"{expired} conversion(s) held by a worker whose lease ran out."
    if expired:
        message += " A worker died or hung mid-send; the next run takes them over."
    found.append(Finding("expired_leases", level, message, expired))

    attempts = attempts_since(now - FAILURE_WINDOW)
    failures = sum(attempts[outcome] for outcome in FAILURE_OUTCOMES)
    level = level_of(failures, conf.status_failures)
    found.append(
        Finding(
            "failures",
            level,
            f"{failures} attempt(s) failed in the last hour "
            f"({attempts[Outcome.REJECTED]} rejected, {attempts[Outcome.TRANSIENT]} transient).",
            failures,
        )
    )

    # The figures below (alerts) are counted by the sweeps: say what they are current to.
    fresh = counted_freshness(now)
    if fresh is not None:
        found.append(Finding("counted", OK, str(fresh), fresh.age_seconds))

    for alert in insight_alerts(now):
        found.append(
            Finding(
                "low_conversion",
                WARNING,
                f"Low conversion rate for {alert.by} {alert.label}: {alert.rate:.1%} of "
                f"{alert.sent} messages converted over the last "
                f"{window_text(alert.window_seconds)}.",
                alert.rate,
            )
        )
    # The send guard: a destination blocked in the last hour is worth a look (an attack, or
    # a rule or threshold refusing real users).
    for refused in refused_since(now - FAILURE_WINDOW, limit=5):
        if refused.action == "block":
            found.append(
                Finding(
                    "send_guard",
                    WARNING,
                    f"The send guard blocked +{refused.prefix or '?'} ({refused.country or '??'}) "
                    f"{refused.checks} time(s) in the last hour ({refused.reason}).",
                    refused.checks,
                )
            )
    return found


def worst(found: Sequence[Finding]) -> str:
    """The overall level: the worst finding's."""
    return max((f.level for f in found), key=_RANK.__getitem__, default=OK)


def summary(found: Sequence[Finding]) -> str:
    """One line for a monitor: the problems, or that all is well; a problem read from the
    counted figures (a low-conversion alert) comes with what they are current to."""
    problems = [f.message for f in found if f.level != OK]
    if any(f.check == "low_conversion" for f in found):
        problems += [f.message for f in found if f.check == "counted"]
    return " ".join(problems) if problems else "Reporting is healthy."
