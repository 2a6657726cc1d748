"""The tracked-link endpoint: mark the conversion, then redirect. See ``links``."""

from __future__ import annotations

import re

from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseRedirect,
)
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_safe

from .. import links

#: Messaging apps fetch a link as soon as the SMS arrives to draw a preview: that is not the
#: person converting. iMessage's fetcher claims to be facebookexternalhit and Twitterbot;
#: Signal's claims WhatsApp. A request with no User-Agent at all is a script, not a phone.
#: In-app browsers (where a real person reads the page) are deliberately not listed.
PREVIEW_USER_AGENTS = re.compile(
    r"WhatsApp|facebookexternalhit|Facebot|Slackbot|Slack-ImgProxy|Twitterbot|TelegramBot"
    r"|Discordbot|SkypeUriPreview|LinkPreview|Applebot|Googlebot|Google-PageRenderer"
    r"|AdsBot-Google|bingbot|LinkedInBot|redditbot|Pinterestbot|Embedly"
    r"|vkShare|Iframely|MicrosoftPreview|Mastodon|Bluesky|W3C_Validator|HeadlessChrome",
    re.IGNORECASE,
)


#: Headers a browser sends when it fetches a page ahead of a click (speculation rules, link
#: prefetch): Chromium's ``Sec-Purpose: prefetch`` (also ``prefetch;prerender``), the older
#: ``Purpose: prefetch`` and Firefox's ``X-Moz: prefetch``; Safari's and older WebKit's link
#: previews say ``X-Purpose: preview``. Nobody has converted yet.
PREFETCH_HEADERS = ("Sec-Purpose", "Purpose", "X-Purpose", "X-Moz")
#: The values of those headers that mean "not a click".
PREFETCH_VALUES = ("prefetch", "preview", "prerender")


def is_prefetch(request: HttpRequest) -> bool:
    values = [request.headers.get(name, "").lower() for name in PREFETCH_HEADERS]
    return any(word in value for value in values for word in PREFETCH_VALUES)


def is_link_preview(request: HttpRequest) -> bool:
    """A messaging app drawing a preview, a script, or a browser prefetching: not a click."""
    agent = request.headers.get("User-Agent", "")
    return not agent.strip() or bool(PREVIEW_USER_AGENTS.search(agent)) or is_prefetch(request)


@require_safe
def track(request: HttpRequest, token: str) -> HttpResponse:
    """GET marks the conversion and redirects (302); HEAD and link previews only redirect.

    A forged, altered or expired token answers 404 and marks nothing; a target no longer
    allowed (the settings changed since the link was built) answers 400, never a redirect.
    """
    try:
        link = links.read_token(token)
    except links.BadLink:
        raise Http404(_("This link is not valid or has expired.")) from None
    if not links.is_allowed_target(link.url):
        return HttpResponseBadRequest(_("This link's destination is not allowed."))
    if request.method == "GET" and not is_link_preview(request):
        links.follow(link)
    response = HttpResponseRedirect(link.url)
    # Every click must reach us: a cached redirect would skip the marking.
    add_never_cache_headers(response)
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response
