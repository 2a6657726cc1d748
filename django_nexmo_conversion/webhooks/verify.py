"""The webhook signature check: which accounts sign, and whether a webhook's ``sig`` is valid
and its ``timestamp`` fresh enough that it cannot be a replay.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping

from django.utils.translation import gettext as _

from ..conf import Account, ConversionSettings, get_settings
from ..transport import signing
from .errors import WebhookRefused
from .params import UNIX_TIME_RE, check_names

_SIGNATURE_RE = re.compile(r"[0-9a-fA-F]{32,128}")


def _signing_accounts(conf: ConversionSettings) -> list[Account]:
    everyone = [conf.default_account, *conf.accounts.values()]
    return [account for account in everyone if account is not None and account.signed]


def signing_required(conf: ConversionSettings | None = None) -> bool:
    """True when any account has a signature secret: every webhook must then be signed."""
    return bool(_signing_accounts(conf or get_settings()))


def verify_webhook(params: Mapping[str, str], *, now: float | None = None) -> None:
    """Raise :class:`WebhookRefused` unless ``params`` carry a valid, fresh signature
    (:class:`BadWebhook` first for a parameter name holding ``&`` or ``=``).

    With no signature secret configured at all, every webhook passes (the endpoints are then
    unauthenticated: the deploy check ``W003`` says so). Otherwise the webhook must be signed
    with the secret of the account its ``api-key`` names (the default account when it names
    none we know), by that account's ``SIGNATURE_METHOD``, and its ``timestamp`` must be within
    ``WEBHOOK_MAX_AGE`` seconds of now, either way, so a captured webhook cannot be replayed
    later.
    """
    # Before the signature: an ambiguous name is refused (400) whether or not webhooks are
    # signed, so a forged merge of two parameters is never even looked at.
    check_names(params)
    conf = get_settings()
    if not signing_required(conf):
        return
    api_key = params.get("api-key", "")
    account = conf.accounts.get(api_key) or conf.default_account
    if account is None or not account.signature_secret:
        raise WebhookRefused(
            _("No signature secret is configured for this webhook's api-key; it is refused.")
        )
    sig = params.get("sig", "")
    if not sig:
        raise WebhookRefused(_("The webhook is not signed (no sig parameter)."))
    # signing.verify compares in constant time, which needs ASCII: check the shape first.
    if not _SIGNATURE_RE.fullmatch(sig) or not signing.verify(
        params, secret=account.signature_secret, method=account.signature_method
    ):
        raise WebhookRefused(_("The webhook's signature is not valid."))
    raw_time = params.get("timestamp", "")
    if not UNIX_TIME_RE.fullmatch(raw_time):
        raise WebhookRefused(_("The signed webhook has no valid timestamp (unix seconds)."))
    age = (time.time() if now is None else now) - int(raw_time)
    if abs(age) > conf.webhook_max_age:
        raise WebhookRefused(
            _("The webhook's timestamp is %(age)d seconds away from now; at most %(max)d allowed.")
            % {"age": abs(age), "max": conf.webhook_max_age}
        )
