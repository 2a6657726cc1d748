"""Tracked links: signed tokens, the redirect view, previews, expiry, open redirects, the tag."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core import signing
from django.template import Context, Template
from django.test import Client, RequestFactory
from django.utils import timezone

from django_nexmo_conversion import conversion_link, record_message, record_sms_response
from django_nexmo_conversion.exceptions import ConversionInputError
from django_nexmo_conversion.links import SALT, make_token
from django_nexmo_conversion.models import Conversion, SentMessage
from django_nexmo_conversion.sandbox import Sandbox
from tests.testapp.models import Order

from .helpers import configure

pytestmark = pytest.mark.django_db

PHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
PREVIEWS = {
    "WhatsApp": "WhatsApp/2.23.20.0 A",
    "Facebook": "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "iMessage": (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_1) AppleWebKit/601.2.4 (KHTML, like Gecko) "
        "Version/9.0.1 Safari/601.2.4 facebookexternalhit/1.1 Facebot Twitterbot/1.0"
    ),
    "Slack": "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "Twitter": "Twitterbot/1.0",
    "Telegram": "TelegramBot (like TwitterBot)",
    "Discord": "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
    "Skype": "Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5",
    "Apple LinkPreview": "AppleWebKit/605.1.15 (KHTML, like Gecko) LinkPreview/1.0",
    "Applebot": "Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15 (compatible; Applebot/0.1)",
    "Googlebot": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "LinkedIn": "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
    "no user agent": "",
}


@pytest.fixture
def message() -> SentMessage:
    return record_message("0A000000AAAA0001")


def get(client: Client, link: str, agent: str = PHONE) -> Any:
    return client.get(link, headers={"user-agent": agent})


def marked() -> list[tuple[str, bool]]:
    return list(Conversion.objects.values_list("message__message_id", "delivered"))


# --- following a link -----------------------------------------------------------------------


def test_a_click_marks_and_redirects(client: Client, message: SentMessage) -> None:
    link = conversion_link(message, "/welcome/?from=sms")
    assert link.startswith("/nexmo/c/")
    before = timezone.now()
    response = get(client, link)
    assert response.status_code == 302
    assert response["Location"] == "/welcome/?from=sms"
    assert "no-store" in response["Cache-Control"]
    conversion = Conversion.objects.get()
    assert (conversion.message_id, conversion.delivered) == (message.pk, True)
    assert before <= conversion.timestamp <= timezone.now()


@pytest.mark.django_db(transaction=True)
def test_a_click_is_reported_to_nexmo(on_commit: Sandbox) -> None:
    message = record_message("0A000000AAAA0002")
    response = get(Client(), conversion_link(message, "https://testserver/offer/"))
    assert response.status_code == 302
    assert response["Location"] == "https://testserver/offer/"
    [request] = on_commit.reported()
    assert (request.form["message-id"], request.form["delivered"]) == ("0A000000AAAA0002", "true")


def test_clicking_twice_marks_once(client: Client, message: SentMessage) -> None:
    link = conversion_link(message, "/")
    get(client, link)
    get(client, link)
    assert marked() == [("0A000000AAAA0001", True)]


def test_a_message_id_string_works_too(client: Client) -> None:
    link = conversion_link("0A000000AAAA0003", "/")
    get(client, link)
    assert marked() == [("0A000000AAAA0003", True)]


def test_base_url_makes_it_absolute(message: SentMessage) -> None:
    link = conversion_link(message, "/", base_url="https://shop.example/")
    assert link.startswith("https://shop.example/nexmo/c/")
    with pytest.raises(ConversionInputError, match="base_url"):
        conversion_link(message, "/", base_url="shop.example")


def test_head_redirects_without_marking(client: Client, message: SentMessage) -> None:
    response = client.head(conversion_link(message, "/next/"), headers={"user-agent": PHONE})
    assert (response.status_code, response["Location"]) == (302, "/next/")
    assert marked() == []


@pytest.mark.parametrize("agent", PREVIEWS.values(), ids=PREVIEWS.keys())
def test_link_previews_redirect_without_marking(
    client: Client, message: SentMessage, agent: str
) -> None:
    response = get(client, conversion_link(message, "/next/"), agent)
    assert (response.status_code, response["Location"]) == (302, "/next/")
    assert marked() == []


def test_other_methods_are_refused(client: Client, message: SentMessage) -> None:
    assert client.post(conversion_link(message, "/")).status_code == 405
    assert marked() == []


def test_a_purged_message_still_redirects(client: Client, message: SentMessage) -> None:
    link = conversion_link(message, "/after/")
    message.delete()
    response = get(client, link)
    assert (response.status_code, response["Location"]) == (302, "/after/")
    assert marked() == []


# --- bad tokens -----------------------------------------------------------------------------


def tampered(token: str) -> list[str]:
    value, signature = token.rsplit(":", 1)
    flip = "A" if value[-1] != "A" else "B"
    return [
        value[:-1] + flip + ":" + signature,  # payload changed
        value + ":" + signature[:-1] + ("A" if signature[-1] != "A" else "B"),  # signature
        value,  # signature dropped
        "garbage",
    ]


def test_tampered_tokens_answer_404_and_mark_nothing(client: Client, message: SentMessage) -> None:
    token = make_token(message, "/")
    for bad in tampered(token):
        assert get(client, f"/nexmo/c/{bad}/").status_code == 404
    assert marked() == []


def test_a_token_signed_for_something_else_is_refused(client: Client, message: SentMessage) -> None:
    # Same SECRET_KEY, same payload, another salt (or none): not a link.
    payload = {"u": "/", "t": int(timezone.now().timestamp()), "m": message.pk}
    for salt in ("django.core.signing", "another.salt"):
        forged = signing.Signer(salt=salt).sign_object(payload, compress=True)
        assert get(client, f"/nexmo/c/{forged}/").status_code == 404
    assert signing.Signer(salt=SALT).sign_object(payload)  # the real salt would have worked
    assert marked() == []


def test_a_redirect_target_cannot_be_swapped(client: Client, message: SentMessage) -> None:
    token = make_token(message, "/mine/")
    evil = make_token(message, "/")  # a valid token: only its own target is reachable
    assert get(client, f"/nexmo/c/{token}/")["Location"] == "/mine/"
    assert get(client, f"/nexmo/c/{evil}/")["Location"] == "/"


def test_an_expired_link_answers_404_and_marks_nothing(
    client: Client, message: SentMessage
) -> None:
    issued = timezone.now() - timedelta(days=2)
    token = make_token(message, "/", max_age=timedelta(days=1), issued_at=issued)
    assert get(client, f"/nexmo/c/{token}/").status_code == 404
    assert marked() == []
    fresh = make_token(message, "/", max_age=timedelta(days=3), issued_at=issued)
    assert get(client, f"/nexmo/c/{fresh}/").status_code == 302
    assert marked() == [("0A000000AAAA0001", True)]


def test_link_max_age_is_the_default(client: Client, message: SentMessage, settings: Any) -> None:
    configure(settings, LINK_MAX_AGE=60)
    old = make_token(message, "/", issued_at=timezone.now() - timedelta(minutes=2))
    assert get(client, f"/nexmo/c/{old}/").status_code == 404
    configure(settings, LINK_MAX_AGE=None)
    forever = make_token(message, "/", issued_at=timezone.now() - timedelta(days=400))
    assert get(client, f"/nexmo/c/{forever}/").status_code == 302


@pytest.mark.parametrize("max_age", [0, -5, "1h", True])
def test_a_bad_max_age_is_refused(message: SentMessage, max_age: Any) -> None:
    with pytest.raises(ConversionInputError, match="max_age"):
        conversion_link(message, "/", max_age=max_age)


# --- open redirects -------------------------------------------------------------------------

OPEN_REDIRECTS = [
    "https://evil.example/",
    "http://evil.example",
    "//evil.example/path",
    "///evil.example",
    "\\\\evil.example",
    "/\\evil.example",
    "https://testserver@evil.example/",
    "https://testserver.evil.example/",
    "javascript:alert(1)",
    "data:text/html,hi",
    "ftp://testserver/file",
    "relative/without/slash",
    "",
    " /leading-space",
]


@pytest.mark.parametrize("url", OPEN_REDIRECTS)
def test_open_redirect_targets_are_refused_when_building(message: SentMessage, url: str) -> None:
    with pytest.raises(ConversionInputError, match="Link target"):
        conversion_link(message, url)


def test_allowed_hosts_and_link_allowed_hosts_are_accepted(
    message: SentMessage, settings: Any
) -> None:
    settings.ALLOWED_HOSTS = ["testserver", ".shop.example"]
    configure(settings, LINK_ALLOWED_HOSTS=["partner.example"])
    for url in (
        "https://testserver/a",
        "http://testserver:8000/a",
        "https://m.shop.example/a",
        "https://partner.example/a?b=c",
    ):
        assert conversion_link(message, url)
    with pytest.raises(ConversionInputError):
        conversion_link(message, "https://sub.partner.example/")


def test_a_wildcard_allowed_hosts_allows_no_foreign_host(
    message: SentMessage, settings: Any
) -> None:
    settings.ALLOWED_HOSTS = ["*"]
    with pytest.raises(ConversionInputError):
        conversion_link(message, "https://evil.example/")


def test_a_host_no_longer_allowed_answers_400(
    client: Client, message: SentMessage, settings: Any
) -> None:
    configure(settings, LINK_ALLOWED_HOSTS=["partner.example"])
    link = conversion_link(message, "https://partner.example/deal")
    configure(settings, LINK_ALLOWED_HOSTS=[])
    response = get(client, link)
    assert response.status_code == 400
    assert "Location" not in response
    assert marked() == []


@pytest.mark.parametrize("url", ["https://evil.example/", "//evil.example", "javascript:alert(1)"])
def test_a_signed_open_redirect_is_still_refused(
    client: Client, message: SentMessage, url: str
) -> None:
    # Even a correctly signed token (say, SECRET_KEY leaked) cannot redirect off-site.
    payload = {"u": url, "t": int(timezone.now().timestamp()), "m": message.pk}
    token = signing.Signer(salt=SALT).sign_object(payload, compress=True)
    response = get(client, f"/nexmo/c/{token}/")
    assert response.status_code == 400
    assert marked() == []


# --- links built before the message id is known ----------------------------------------------


def sms(message_id: str) -> dict[str, Any]:
    return {"message-count": "1", "messages": [{"message-id": message_id, "status": "0"}]}


def test_a_link_for_the_target_marks_the_message_sent_with_it(client: Client) -> None:
    order = Order.objects.create()
    earlier = record_sms_response(sms("0A000000BBBB0001"), target=order)[0]
    earlier.sent_at = timezone.now() - timedelta(hours=1)
    earlier.save()
    # The link goes into the text before sending: no message id exists yet.
    link = conversion_link(order, f"/orders/{order.pk}/")
    sent_with_link = record_sms_response(sms("0A000000BBBB0002"), target=order)[0]
    record_sms_response(sms("0A000000BBBB0003"), target=Order.objects.create())  # another order

    assert get(client, link)["Location"] == f"/orders/{order.pk}/"
    assert marked() == [(sent_with_link.message_id, True)]


def test_a_link_for_a_target_without_messages_only_redirects(client: Client) -> None:
    order = Order.objects.create()
    response = get(client, conversion_link(order, "/"))
    assert response.status_code == 302
    assert marked() == []


def test_an_unsaved_object_is_refused() -> None:
    with pytest.raises(ConversionInputError, match="saved"):
        conversion_link(Order(), "/")


# --- template tag ---------------------------------------------------------------------------


def render(text: str, **context: Any) -> str:
    return Template("{% load nexmo_conversion %}" + text).render(Context(context))


def test_the_template_tag_builds_a_working_link(client: Client, message: SentMessage) -> None:
    link = render("{% conversion_link message '/promo/' %}", message=message).strip()
    assert link.startswith("/nexmo/c/")
    assert get(client, link)["Location"] == "/promo/"
    assert marked() == [("0A000000AAAA0001", True)]


def test_the_template_tag_makes_absolute_links(message: SentMessage) -> None:
    request = RequestFactory().get("/", secure=True)
    assert render("{% conversion_link m '/' %}", m=message, request=request).startswith(
        "https://testserver/nexmo/c/"
    )
    text = render(
        "Hi! {% conversion_link m '/' max_age=3600 base_url='https://shop.example' as link %}"
        "Open {{ link }}",
        m=message,
    )
    assert text.startswith("Hi! Open https://shop.example/nexmo/c/")


def test_the_template_tag_refuses_open_redirects(message: SentMessage) -> None:
    with pytest.raises(ConversionInputError):
        render("{% conversion_link m 'https://evil.example/' %}", m=message)


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_SEC_PURPOSE": "prefetch"},
        {"HTTP_SEC_PURPOSE": "prefetch;prerender"},
        {"HTTP_PURPOSE": "prefetch"},
        {"HTTP_X_MOZ": "prefetch"},
        # Safari's and older WebKit's link previews.
        {"HTTP_X_PURPOSE": "preview"},
        {"HTTP_PURPOSE": "Preview"},
    ],
)
def test_browser_prefetches_redirect_without_marking(
    client: Client, message: SentMessage, headers: dict[str, str]
) -> None:
    link = conversion_link(message, "/thanks/")
    response = client.get(link, HTTP_USER_AGENT="Mozilla/5.0 (iPhone)", **headers)
    assert response.status_code == 302
    assert not Conversion.objects.exists()
    # Control: the click that follows the prefetch marks it.
    client.get(link, HTTP_USER_AGENT="Mozilla/5.0 (iPhone)")
    assert Conversion.objects.count() == 1


@pytest.mark.parametrize(
    "url", ["https://exa\u2100mple.com/", "https://example.com\uff03@evil.test/", "http://[::1"]
)
def test_targets_the_url_parser_refuses_are_a_clear_error(message: SentMessage, url: str) -> None:
    with pytest.raises(ConversionInputError, match="Link target"):
        conversion_link(message, url)


@pytest.mark.parametrize("max_age", [float("inf"), float("nan"), float("-inf")])
def test_a_max_age_that_is_not_finite_is_refused(message: SentMessage, max_age: float) -> None:
    with pytest.raises(ConversionInputError, match="max_age"):
        conversion_link(message, "/thanks/", max_age=max_age)
