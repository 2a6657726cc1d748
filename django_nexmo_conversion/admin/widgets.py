"""Small pieces of HTML the admin's columns and fields show: status badges, links to a message's
target, and last errors cut to a line."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from django.contrib.admin.utils import quote
from django.urls import NoReverseMatch, reverse
from django.utils import formats, timezone
from django.utils.html import format_html
from django.utils.text import Truncator

from ..models import SentMessage

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

#: How long the "last error" column may get before it is cut (the full text is its tooltip).
SHORT_ERROR_LENGTH = 120


def status_badge(status: str, label: StrOrPromise) -> str:
    """A conversion's status as a badge, coloured by ``admin.css``."""
    return format_html('<span class="nexmo-badge nexmo-badge--{}">{}</span>', status, label)


def target_link(message: SentMessage, site_name: str) -> str:
    """A link to the admin page of the message's target, without loading the target itself
    (the content type comes with the row); plain text where the target has no admin."""
    content_type = message.target_content_type
    if content_type is None or not message.target_object_id:
        return "-"
    label = f"{content_type.name} #{message.target_object_id}"
    try:
        url = reverse(
            f"admin:{content_type.app_label}_{content_type.model}_change",
            args=[quote(message.target_object_id)],
            current_app=site_name,
        )
    except NoReverseMatch:
        return label
    return format_html('<a href="{}">{}</a>', url, label)


def error_excerpt(error: str) -> str:
    """``error`` cut to :data:`SHORT_ERROR_LENGTH`, with the whole of it as its tooltip."""
    if not error:
        return "-"
    # Cut to a line by CSS (with an ellipsis) and here to a bound; the tooltip has it all.
    short = Truncator(error).chars(SHORT_ERROR_LENGTH)
    return format_html('<span class="nexmo-error" title="{}">{}</span>', error, short)


def moment(value: datetime | None) -> str:
    """The one way the conversion page writes a moment: the date as the active language
    writes it, month in words (never the ambiguous 12/07/2026), and the time to the second
    in 24 h, in the current time zone: attempts seconds apart are the point of the page."""
    if value is None:
        return "-"
    local = timezone.localtime(value)
    day = formats.date_format(local, "DATE_FORMAT")
    return f"{day}, {formats.time_format(local, 'H:i:s')}"
