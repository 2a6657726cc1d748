"""What the admin tells people about reporting: the "reporting is stopped" banner, what to fix
after an account error, and the message that sums up a report run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from .. import queries
from ..choices import Outcome
from ..conf import setting
from ..reporting import engine

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise


def account_error_fix(outcome: str, status_code: int | None) -> StrOrPromise:
    """What to do about a 401 or 402, or an endpoint error, naming the settings to check
    (never their values)."""
    if outcome == Outcome.ENDPOINT_ERROR:
        return format_lazy(
            _(
                "The endpoint or the request's shape is wrong, the same for every conversion: "
                "check {base_url} (the API's root, e.g. https://api.nexmo.com, with no path) "
                "and any proxy between this server and Nexmo ({proxies}, HTTPS_PROXY)."
            ),
            base_url=setting("BASE_URL"),
            proxies=setting("PROXIES"),
        )
    if status_code == 402:
        return _(
            "The Conversion API is not enabled for this account: ask Vonage support to enable "
            "it for the API key that sent the messages."
        )
    return format_lazy(
        _(
            "Check the credentials: {api_key} and {api_secret} (or {signature_secret} and "
            "{signature_method} when requests are signed, and {auth}), or the NEXMO_API_KEY / "
            "NEXMO_API_SECRET environment variables, and {accounts} if you use several keys."
        ),
        auth=setting("AUTH"),
        api_key=setting("API_KEY"),
        api_secret=setting("API_SECRET"),
        signature_secret=setting("SIGNATURE_SECRET"),
        signature_method=setting("SIGNATURE_METHOD"),
        accounts=setting("ACCOUNTS"),
    )


def halt_context() -> dict[str, Any]:
    """Template context for the "reporting is stopped" banner: one entry per halt in effect
    (an empty list when reporting runs)."""
    return {
        "nexmo_halts": [
            {"halt": halt, "fix": account_error_fix(halt.outcome, halt.status_code)}
            for halt in queries.current_halts()
        ]
    }


def describe_result(result: engine.ReportResult) -> tuple[int, str]:
    """The admin message for a report run: its level and text."""
    counts = _("Reported %(reported)d, will retry %(retrying)d, failed %(failed)d.") % {
        "reported": result.reported,
        "retrying": result.retrying,
        "failed": result.failed,
    }
    halt = result.halt
    if halt is not None:
        refused = _("the endpoint") if halt.everything else _("the account")
        text = _(
            "Reporting stopped: Nexmo refused %(refused)s (%(error)s). %(fix)s "
            "%(counts)s The others stay pending, nothing is lost: the next report run "
            "sends them once this is fixed."
        ) % {
            "refused": refused,
            "error": halt.error or f"HTTP {halt.status_code}",
            "fix": account_error_fix(halt.outcome, halt.status_code),
            "counts": counts,
        }
        return messages.ERROR, text
    if result.failed or result.retrying:
        hint = _("See each conversion's attempts for Nexmo's answers.")
        return messages.WARNING, f"{counts} {hint}"
    return messages.SUCCESS, counts
