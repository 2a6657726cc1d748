"""Tracked links: a signed URL that marks a conversion when followed, then redirects.

Build one with :func:`conversion_link` and put it in the SMS; the ``track`` view in
``django_nexmo_conversion.urls`` reads it back with :func:`read_token` and calls
:func:`follow`. The token is signed with ``django.core.signing`` under a salt of its own, so
it cannot be forged, its target cannot be changed, and an expired one is refused.

A link names either a recorded message, or the object the message is about (its
``target``). The second form exists because an SMS's message id is only known once it has
been sent, while the link must be in its text before: build the link for the order, send,
then ``record_sms_response(response, target=order)``. Following the link marks the message
recorded for that object at or after the moment the link was built (the message sent with
it), or failing that the latest one before.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings as django_settings
from django.contrib.contenttypes.models import ContentType
from django.core import signing
from django.db import models, transaction
from django.http.request import validate_host
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme

from .conf import get_settings, setting
from .exceptions import ConversionInputError
from .marking import mark_converted, record_message
from .models import Channel, Conversion, SentMessage

logger = logging.getLogger("django_nexmo_conversion")

#: Used for nothing else, so a value signed elsewhere with SECRET_KEY is never a valid link.
SALT = "django_nexmo_conversion.links"


class BadLink(Exception):
    """The token was tampered with, is not ours, or has expired. The view answers 404."""


@dataclass(frozen=True)
class Link:
    """A verified token's content."""

    url: str
    #: When the link was built (epoch seconds).
    issued_at: float
    #: ``SentMessage`` primary key, for a link built for a message.
    message_pk: int | None = None
    #: ``(content type id, primary key)`` of the target, for a link built for an object.
    target: tuple[int, str] | None = None


def allowed_hosts() -> list[str]:
    """Hosts a link may redirect to: ``ALLOWED_HOSTS`` (``"*"`` excluded: it would make every
    link an open redirect) plus ``LINK_ALLOWED_HOSTS``. ``".example.com"`` matches subdomains."""
    hosts = [h for h in django_settings.ALLOWED_HOSTS if h != "*"]
    return [*hosts, *get_settings().link_allowed_hosts]


def is_allowed_target(url: str) -> bool:
    """A path on this site (``/...``), or an http(s) URL on an allowed host."""
    if not isinstance(url, str) or not url:
        return False
    try:
        return _is_allowed(url)
    except ValueError:
        # urlsplit refuses a netloc that changes under NFKC normalisation, .port a bad port:
        # a URL the parser cannot read is no target.
        return False


def _is_allowed(url: str) -> bool:
    parts = urlsplit(url)
    if not parts.scheme and not parts.netloc:
        # Relative URLs must be absolute paths: "foo" would resolve against the link's own
        # path. url_has_allowed_host_and_scheme rejects "//evil", "\\evil", "javascript:".
        return url.startswith("/") and url_has_allowed_host_and_scheme(url, allowed_hosts=set())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    return url_has_allowed_host_and_scheme(url, allowed_hosts={parts.netloc}) and validate_host(
        parts.hostname, allowed_hosts()
    )


def _check_target(url: object) -> str:
    if not isinstance(url, str) or not is_allowed_target(url):
        raise ConversionInputError(
            f"Link target {url!r} is neither a path on this site (starting with '/') nor an "
            f"http(s) URL on a host in ALLOWED_HOSTS or {setting('LINK_ALLOWED_HOSTS')}."
        )
    return url


def _max_age(max_age: float | timedelta | None) -> float | None:
    if max_age is None:
        return get_settings().link_max_age
    if isinstance(max_age, timedelta):
        max_age = max_age.total_seconds()
    if (
        isinstance(max_age, bool)
        or not isinstance(max_age, (int, float))
        # inf and nan: an expiry nobody can compute or sign (int(inf) overflows).
        or not math.isfinite(max_age)
        or max_age <= 0
    ):
        raise ConversionInputError(
            f"max_age must be a positive number of seconds, got {max_age!r}."
        )
    return float(max_age)


def make_token(
    message: SentMessage | models.Model,
    url: str,
    *,
    max_age: float | timedelta | None = None,
    issued_at: datetime | None = None,
) -> str:
    """The signed token for the link; see :func:`conversion_link`."""
    url = _check_target(url)
    seconds = _max_age(max_age)
    issued = (issued_at or timezone.now()).timestamp()
    if not isinstance(message, models.Model) or message.pk is None:
        raise ConversionInputError(
            "message must be a saved SentMessage, a message id string, or the saved object "
            f"the message is about; got {type(message).__name__}."
        )
    # Short keys: the token travels inside an SMS, where every character counts.
    payload: dict[str, Any] = {"u": url, "t": int(issued)}
    if isinstance(message, SentMessage):
        payload["m"] = message.pk
    else:
        payload["o"] = [ContentType.objects.get_for_model(message).pk, str(message.pk)]
    if seconds is not None:
        payload["x"] = int(issued + seconds)
    return signing.Signer(salt=SALT).sign_object(payload, compress=True)


def read_token(token: str) -> Link:
    """Verify ``token``; raises :class:`BadLink` if it is forged, altered or expired."""
    try:
        payload = signing.Signer(salt=SALT).unsign_object(token)
    except (signing.BadSignature, ValueError):
        raise BadLink("bad signature") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("u"), str):
        raise BadLink("malformed")
    expires = payload.get("x")
    if expires is not None and time.time() > expires:
        raise BadLink("expired")
    target = payload.get("o")
    return Link(
        url=payload["u"],
        issued_at=float(payload.get("t", 0)),
        message_pk=payload.get("m"),
        target=(int(target[0]), str(target[1])) if target else None,
    )


def conversion_link(
    message: SentMessage | models.Model | str,
    url: str,
    *,
    max_age: float | timedelta | None = None,
    base_url: str | None = None,
    channel: str = Channel.SMS,
) -> str:
    """A link that marks ``message`` converted (delivered, now) and redirects to ``url``.

    ``message`` is a ``SentMessage``, a message id string (recorded on the fly if unknown,
    like ``mark_converted``), or the saved object the message is about (its ``target``) when
    the link goes into the very SMS whose id is not known yet. ``url`` is a path on this
    site or an http(s) URL on ``ALLOWED_HOSTS`` / ``LINK_ALLOWED_HOSTS``; anything else
    raises ``ConversionInputError``. ``max_age`` (seconds or timedelta) defaults to
    ``LINK_MAX_AGE``; after it the link answers 404.

    Returns a path (``/nexmo/c/<token>/``). For the absolute URL an SMS needs, pass
    ``base_url="https://example.com"`` or use ``request.build_absolute_uri(link)``.
    """
    if isinstance(message, str):
        message = record_message(message, channel=channel)
    path = reverse(
        "django_nexmo_conversion:track", kwargs={"token": make_token(message, url, max_age=max_age)}
    )
    if base_url:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConversionInputError(f"base_url must be an http(s) URL, got {base_url!r}.")
        return base_url.rstrip("/") + path
    return path


def _message_for(link: Link) -> SentMessage | None:
    if link.message_pk is not None:
        return SentMessage.objects.filter(pk=link.message_pk).first()
    if link.target is None:
        return None
    content_type_id, object_id = link.target
    sent = SentMessage.objects.filter(
        target_content_type_id=content_type_id, target_object_id=object_id, parent__isnull=True
    )
    issued = datetime.fromtimestamp(link.issued_at, tz=timezone.get_current_timezone())
    after = sent.filter(sent_at__gte=issued).order_by("sent_at", "pk").first()
    return after or sent.filter(sent_at__lt=issued).order_by("-sent_at", "-pk").first()


def follow(link: Link) -> Conversion | None:
    """Mark the link's message converted (delivered, now); ``None`` when there is no message
    (purged, or not recorded yet). Never raises: the visitor must reach the target anyway."""
    try:
        with transaction.atomic():
            message = _message_for(link)
            if message is None:
                logger.info("Tracked link followed, but its message is not recorded.")
                return None
            return mark_converted(message, delivered=True)
    except Exception:
        logger.exception("Tracked link followed, but the conversion could not be marked.")
        return None
