"""Reading the parameters inbound messages and receipts share (``messageId``, ``api-key``,
timestamps); their formats are ``wire``'s."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from django.utils import timezone
from django.utils.translation import gettext as _

from .. import validation
from ..exceptions import ConversionInputError
from ..transport import signing, wire
from .errors import BadWebhook

#: The ``timestamp`` parameter: unix seconds.
UNIX_TIME_RE = wire.UNIX_TIME_SHAPE


def check_names(params: Mapping[str, str]) -> None:
    """:class:`BadWebhook` for a parameter name the signature cannot tell apart.

    The signed string is ``&name=value`` per parameter; ``&`` and ``=`` are masked in values
    but (as in Vonage's SDKs) not in names, so a name holding them could merge two parameters
    into one without changing the signature. No Vonage webhook has such a name.
    """
    for name in params:
        if not signing.is_signable_name(name):
            raise BadWebhook(
                _("The parameter name %(name)r contains '&' or '=', which no webhook's has.")
                % {"name": name[:40]}
            )


def read_required(params: Mapping[str, str], name: str) -> str:
    """The parameter ``name``; :class:`BadWebhook` when it is missing or empty."""
    value = params.get(name, "")
    if not value:
        raise BadWebhook(_("The %(name)s parameter is missing.") % {"name": name})
    return value


def read_message_id(params: Mapping[str, str]) -> str:
    """The ``messageId`` parameter, checked as a Vonage message id."""
    try:
        return validation.clean_message_id(read_required(params, "messageId"))
    except BadWebhook:
        raise
    except ConversionInputError as exc:
        raise BadWebhook(f"messageId: {exc}") from None


def read_api_key(params: Mapping[str, str]) -> str:
    """The ``api-key`` parameter, checked as an API key (empty when there is none)."""
    try:
        return validation.clean_api_key(params.get("api-key", ""))
    except ConversionInputError:
        raise BadWebhook(_("The api-key parameter is not an API key.")) from None


def read_vonage_time(params: Mapping[str, str]) -> datetime:
    """When Vonage pushed the webhook: ``message-timestamp``, else ``timestamp``, else now.

    Never in the future: a conversion may not be dated later than now.
    """
    now = timezone.now()
    raw = params.get("message-timestamp", "")
    unix = params.get("timestamp", "")
    if raw:
        try:
            value = wire.parse_timestamp(raw)
        except ValueError:
            raise BadWebhook(
                _(
                    "message-timestamp must be a date as YYYY-MM-DD HH:MM:SS (UTC), "
                    "not before %(earliest)s."
                )
                % {"earliest": wire.EARLIEST_TIMESTAMP.year}
            ) from None
    elif unix:
        try:
            value = wire.parse_unix_time(unix)
        except ValueError:
            raise BadWebhook(
                _("timestamp must be unix seconds, not before %(earliest)s.")
                % {"earliest": wire.EARLIEST_TIMESTAMP.year}
            ) from None
    else:
        value = now
    return min(value, now)
