"""The sandbox ``demo.py`` runs in this same process, so the page can script its answers
and show what it received. Run the site any other way and nothing is attached: the page
then hides those parts and reports go wherever ``NEXMO_CONVERSION["BASE_URL"]`` points.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext_lazy as _

from django_nexmo_conversion.sandbox import Sandbox, ScriptItem
from django_nexmo_conversion.sandbox.sender import PostedWebhook, WebhookSender

#: How the sandbox answers a message's conversion report: key -> (label, scripted answers).
ANSWERS: dict[str, tuple[str, tuple[ScriptItem, ...]]] = {
    "ok": (_("200 OK: reported at once"), ()),
    "retry": (_("503 twice, then 200: retried with backoff"), (503, 503)),
    "throttle": (_("429 Too Many Requests once (Retry-After 1 s), then 200"), (429,)),
    "reject": (_("422 Invalid parameters: failed at once, never retried"), (422,)),
    "down": (_("503 every time: failed after MAX_ATTEMPTS"), (503,) * 20),
}

_sandbox: Sandbox | None = None


def attach(sandbox: Sandbox | None) -> None:
    global _sandbox
    _sandbox = sandbox


def attached() -> Sandbox | None:
    return _sandbox if _sandbox is not None and _sandbox.running else None


def script_answer(message_id: str, answer: str) -> None:
    """Make the sandbox answer ``message_id``'s reports as ``ANSWERS[answer]`` says."""
    sandbox = attached()
    items = ANSWERS[answer][1]
    if sandbox is not None and items:
        sandbox.script(*items, message_id=message_id)


@dataclass(frozen=True)
class Received:
    """One request as the page shows it: an allow-list of fields, so never a secret."""

    path: str
    message_id: str
    delivered: str
    timestamp: str
    api_key: str
    answer: str


def received(limit: int = 10) -> list[Received]:
    """The latest requests the sandbox received, newest first."""
    sandbox = attached()
    if sandbox is None:
        return []
    rows = []
    for request in reversed(sandbox.requests[-limit:]):
        params = request.params
        rows.append(
            Received(
                path=request.path,
                message_id=request.message_id or "-",
                delivered=params.get("delivered", "-"),
                timestamp=params.get("timestamp", "-"),
                api_key=request.api_key or "-",
                answer=str(request.status) if request.status is not None else str(request.fault),
            )
        )
    return rows


def post_reply(*, url: str, msisdn: str, text: str) -> PostedWebhook:
    """Have the sandbox play Vonage: post an inbound SMS from ``msisdn`` to ``url``, signed
    with its account's signature secret if it has one (the demo's has none)."""
    sandbox = attached()
    sender = WebhookSender.for_sandbox(sandbox) if sandbox is not None else WebhookSender()
    return sender.inbound(url, msisdn=msisdn, text=text)
