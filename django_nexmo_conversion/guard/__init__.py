"""The send guard: ask it **before** sending an SMS or making a call.

::

    from django_nexmo_conversion import guard

    guard.enforce(number, client=request.META["REMOTE_ADDR"])  # raises guard.SendBlocked
    response = sms.send_message({...})

:func:`check` returns a :class:`Decision`; :func:`enforce` raises :class:`SendBlocked` when
the send must not go. ``GUARD["MODE"]``: ``"off"`` (the default: allow, read nothing, write
nothing), ``"monitor"`` (decide and record, flag what would be blocked, never refuse),
``"enforce"``. If the guard itself fails (the database is unreachable), the send is
allowed and the failure logged once (``GUARD["FAIL"] = "open"``, the default), or refused
(``"closed"``). :func:`replay` (``manage.py replay_send_guard``) judges the recorded
history with the current settings before you enforce them.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.db.models import QuerySet
from django.utils import timezone

from .. import signals
from ..conf import get_settings
from ..exceptions import ConversionInputError, NexmoConversionError
from ..models import GuardReplay
from .decide import BLOCKING, REASON_CODES, Decision, decide, outcome
from .live import evidence, record, target_of
from .recent import Refused, decisions_since, refused_since

if TYPE_CHECKING:
    from .backtest import ReplayResult

__all__ = [
    "BLOCKING",
    "REASON_CODES",
    "Decision",
    "Refused",
    "SendBlocked",
    "acheck",
    "aenforce",
    "check",
    "decisions_since",
    "enforce",
    "newest_replays",
    "refused_since",
    "replay",
]

logger = logging.getLogger("django_nexmo_conversion")

#: Whether the last check failed: a failure is logged once, until a check succeeds again.
_failing = False


class SendBlocked(NexmoConversionError):
    """Raised by :func:`enforce`: the guard refused the send. ``decision`` says why."""

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        super().__init__(f"Send refused by the send guard: {decision}")


def _failed(exc: BaseException, target: Any) -> Decision:
    global _failing
    if not _failing:
        _failing = True
        logger.error(
            "The send guard could not decide (%s); sends are %s until it can.",
            type(exc).__name__,
            "allowed" if get_settings().guard.fail == "open" else "refused",
        )
    s = get_settings().guard
    closed = s.fail == "closed"
    text = (
        f"the guard could not decide ({type(exc).__name__}); "
        f"FAIL={s.fail!r}: the send is {'refused' if closed else 'allowed'}"
    )
    return outcome(closed, [("guard_error", text)], target, s)


def check(
    to: object, *, channel: str = "sms", client: object = None, now: datetime | None = None
) -> Decision:
    """Whether a send to ``to`` may go now. ``client``: who asked (an IP address, a user id,
    a session), for the per-requester velocity. ``now``: judge at a past moment (tests).

    Raises ``ConversionInputError`` for input that is no phone number (empty, letters,
    longer than a number); never for what the database does (see ``GUARD["FAIL"]``).
    """
    if channel not in ("sms", "voice"):
        raise ConversionInputError(f"channel must be 'sms' or 'voice', got {channel!r}.")
    s = get_settings().guard
    target, digits = target_of(to, client, s)
    if not s.on:
        return Decision(True, "allow", (), target.prefix, target.country)
    moment = now or timezone.now()
    global _failing
    try:
        decision = decide(target, evidence(target, digits, moment, s), s)
        record(target, moment, decision.action, decision.codes[0] if decision.codes else "")
    except Exception as exc:  # fail open (or closed) on anything
        decision = _failed(exc, target)
    else:
        if _failing:
            _failing = False
            logger.warning("The send guard decides again.")
    if decision.action == "block":
        signals.send_blocked.send(
            sender=Decision, decision=decision, to_country=decision.country, prefix=decision.prefix
        )
    return decision


def enforce(to: object, *, channel: str = "sms", client: object = None) -> Decision:
    """:func:`check`, raising :class:`SendBlocked` when the send must not go."""
    decision = check(to, channel=channel, client=client)
    if not decision.allowed:
        raise SendBlocked(decision)
    return decision


async def acheck(
    to: object, *, channel: str = "sms", client: object = None, now: datetime | None = None
) -> Decision:
    """:func:`check` for async code."""
    return await sync_to_async(check, thread_sensitive=True)(
        to, channel=channel, client=client, now=now
    )


async def aenforce(to: object, *, channel: str = "sms", client: object = None) -> Decision:
    """:func:`enforce` for async code."""
    return await sync_to_async(enforce, thread_sensitive=True)(to, channel=channel, client=client)


#: How many replays' figures the Send guard page keeps.
KEEP_REPLAYS = 10


def replay(*, days: float = 7, now: datetime | None = None, record: bool = True) -> ReplayResult:
    """Judge the sends of the last ``days`` with the current settings (``guard.backtest``).
    With ``record``, its figures are kept for the Send guard page (the newest
    ``KEEP_REPLAYS``); nothing else is written."""
    from .backtest import replay as run

    result = run(days=days, now=now)
    if record:
        GuardReplay.objects.create(days=days, summary=result.as_dict())
        kept = newest_replays().values_list("pk", flat=True)[:KEEP_REPLAYS]
        GuardReplay.objects.exclude(pk__in=list(kept)).delete()
    return result


def newest_replays() -> QuerySet[GuardReplay]:
    """The kept replays' figures, the newest first (the Send guard page shows the first)."""
    return GuardReplay.objects.order_by("-ran_at", "-pk")
