"""``{% load nexmo_conversion %}``: tracked links in message templates.

::

    {% load nexmo_conversion %}
    Your order has shipped: {% conversion_link order "/orders/42/" %}
    {% conversion_link message target_url max_age=3600 base_url="https://shop.example" as link %}

The link is absolute when ``base_url`` is given, or when the template is rendered with a
``request`` in its context (``request.build_absolute_uri``); otherwise it is a path.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import template
from django.db import models

from ..links import conversion_link as build_link
from ..models import Channel, SentMessage

register = template.Library()


@register.simple_tag(takes_context=True, name="conversion_link")
def conversion_link_tag(
    context: template.Context,
    message: SentMessage | models.Model | str,
    url: str,
    max_age: float | timedelta | None = None,
    base_url: str | None = None,
    channel: str = Channel.SMS,
) -> str:
    """See :func:`django_nexmo_conversion.links.conversion_link`; bad input raises, as there."""
    link = build_link(message, url, max_age=max_age, base_url=base_url, channel=channel)
    request: Any = context.get("request")
    if base_url is None and request is not None and hasattr(request, "build_absolute_uri"):
        return str(request.build_absolute_uri(link))
    return link
