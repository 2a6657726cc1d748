"""Reading the parameters inbound messages and receipts share (``messageId``, ``api-key``,
timestamps); their formats are ``wire``'s."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from datetime import timezone as dt_timezone

from django.utils import timezone
from django.utils.translation import gettext as _

from .. import validation, wire
from ..exceptions import ConversionInputError
from .errors import BadWebhook

#: The ``timestamp`` parameter: unix seconds.
UNIX_TIME_RE = re.compile(r"[0-9]{1,12}")


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
    if raw:
        try:
            value = wire.parse_timestamp(raw)
        except ValueError:
            raise BadWebhook(
                _("message-timestamp must look like YYYY-MM-DD HH:MM:SS (UTC).")
            ) from None
    elif UNIX_TIME_RE.fullmatch(params.get("timestamp", "")):
        value = datetime.fromtimestamp(int(params["timestamp"]), tz=dt_timezone.utc)
    else:
        value = now
    return min(value, now)
