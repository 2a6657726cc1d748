"""Hostile webhooks: every parse failure is a 400 naming the field, never
a 500 (fuzzed with Hypothesis); a reply converts only its own account's message; a parameter
name that could merge two signed parameters is refused; W003 sees webhooks however routed.
"""

from __future__ import annotations

import functools
import json
import time
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.test import Client
from django.urls import path, reverse
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from django_nexmo_conversion import record_message
from django_nexmo_conversion.models import Conversion, InboundMessage, ReplyOutcome
from django_nexmo_conversion.sandbox import DEFAULT_API_KEY
from django_nexmo_conversion.transport.signing import UnsignableParameters, sign, verify
from django_nexmo_conversion.views import webhooks as webhook_views

from .helpers import HANDSET, configure, receipt_params, reply_params, static_checks

pytestmark = pytest.mark.django_db

NUMBER = HANDSET
SECRET = "hardening-sig-secret-1"
KINDS = ("inbound", "receipt")
W003 = "django_nexmo_conversion.W003"


def url(kind: str) -> str:
    return reverse(f"django_nexmo_conversion:{kind}")


reply = reply_params
receipt = functools.partial(receipt_params, message_id="0A00000000000AB1")


def nothing_recorded() -> bool:
    return not InboundMessage.objects.exists() and not Conversion.objects.exists()


# --- item 7: parse failures are 400s naming the field ------------------------------------------


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "body",
    [
        nested(100_000),
        '{"messageId": ' + nested(100_000) + "}",
        # Parses (under the recursion limit) but a nested value is read back as JSON text.
        '{"messageId": "0A1", "x": ' + nested(900) + "}",
    ],
    ids=["deep-array", "deep-value", "deep-value-dumped"],
)
def test_deeply_nested_json_is_a_400(kind: str, body: str) -> None:
    response = Client(raise_request_exception=False).post(
        url(kind), body, content_type="application/json"
    )
    assert response.status_code == 400, response.content
    assert nothing_recorded()


@pytest.mark.parametrize(
    ("params", "named"),
    [
        (reply(**{"message-timestamp": "0001-01-01 00:00:00"}), "message-timestamp"),
        (reply(**{"message-timestamp": "1970-01-01 00:00:00"}), "message-timestamp"),
        (reply(**{"message-timestamp": "9999-12-31 23:59:59"}), "message-timestamp"),
        ({**reply(timestamp="999999999999"), "message-timestamp": ""}, "timestamp"),
        ({**reply(timestamp="0"), "message-timestamp": ""}, "timestamp"),
        ({**reply(timestamp="soon"), "message-timestamp": ""}, "timestamp"),
        (receipt(**{"message-timestamp": "0001-01-01 00:00:00"}), "message-timestamp"),
        ({**receipt(timestamp="999999999999"), "message-timestamp": ""}, "timestamp"),
    ],
)
def test_out_of_range_timestamps_are_a_400_naming_them(params: dict[str, str], named: str) -> None:
    kind = "inbound" if "msisdn" in params and "status" not in params else "receipt"
    record_message("0A00000000000AB1", recipient=NUMBER, sent_at=timezone.now())
    response = Client(raise_request_exception=False).post(url(kind), params)
    assert response.status_code == 400, response.content
    assert named in response.content.decode()
    assert nothing_recorded()


#: Parameter names and values a hostile client might send: Vonage's own names, with anything.
VONAGE_NAMES = "messageId msisdn to text api-key status err-code timestamp message-timestamp sig"
NAMES = st.sampled_from([*VONAGE_NAMES.split(), "type", "keyword", "a&b", "x=y"]) | st.text(
    max_size=12
)
VALUES = (
    st.text(max_size=40)
    | st.from_regex(r"[0-9]{1,14}", fullmatch=True)
    | st.from_regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}", fullmatch=True)
)
PARAMS = st.dictionaries(NAMES, VALUES, max_size=10)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children),
    max_leaves=10,
)


def acceptable(status: int, *, signed: bool) -> bool:
    return status in ((200, 400, 403) if signed else (200, 400))


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
@hypothesis_settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(params=PARAMS, json_extra=st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=3))
def test_fuzzed_webhooks_never_answer_500(
    settings: Any, signed: bool, params: dict[str, str], json_extra: dict[str, Any]
) -> None:
    configure(settings, SIGNATURE_SECRET=SECRET if signed else None)
    client = Client(raise_request_exception=False)
    for kind in KINDS:
        # Each example in a savepoint rolled back, so examples do not see each other's rows.
        with transaction.atomic():
            form = client.post(url(kind), params)
            query = client.get(url(kind), params)
            body = json.dumps({**params, **json_extra})
            as_json = client.post(url(kind), body, content_type="application/json")
            transaction.set_rollback(True)
        for response in (form, query, as_json):
            assert acceptable(response.status_code, signed=signed), response.content


# --- item 9: names holding & or = --------------------------------------------------------------


def test_a_name_holding_separators_cannot_be_signed_or_verified() -> None:
    with pytest.raises(UnsignableParameters):
        sign({"a&b": "1"}, secret=SECRET)
    with pytest.raises(UnsignableParameters):
        sign({"a=b": "1"}, secret=SECRET)
    assert verify({"a=b": "1", "sig": "0" * 32}, secret=SECRET) is False


@given(
    params=st.dictionaries(st.text().filter(lambda n: n != "sig"), st.text(), max_size=6),
    method=st.sampled_from(["md5hash", "md5", "sha1", "sha256", "sha512"]),
)
def test_signing_round_trips_and_never_accepts_an_ambiguous_name(
    params: dict[str, str], method: str
) -> None:
    ambiguous = any("&" in name or "=" in name for name in params)
    if ambiguous:
        with pytest.raises(UnsignableParameters):
            sign(params, secret=SECRET, method=method)
    else:
        signed_params = {**params, "sig": sign(params, secret=SECRET, method=method)}
        assert verify(signed_params, secret=SECRET, method=method)


@pytest.mark.parametrize("kind", KINDS)
def test_two_parameters_merged_into_one_name_are_refused(kind: str, settings: Any) -> None:
    """``{"a": "x", "b": "y"}`` and ``{"a=x&b": "y"}`` sign the same string."""
    configure(settings, SIGNATURE_SECRET=SECRET, SIGNATURE_METHOD="sha256")
    record_message("0A00000000000AB1", recipient=NUMBER, sent_at=timezone.now())
    genuine = reply() if kind == "inbound" else receipt()
    genuine["timestamp"] = str(int(time.time()))
    sig = sign(genuine, secret=SECRET, method="sha256")
    # The attacker folds the first parameter into the name of the second: same bytes signed.
    first, second = sorted(genuine)[:2]
    merged = {name: value for name, value in genuine.items() if name not in (first, second)}
    merged[f"{first}={genuine[first]}&{second}"] = genuine[second]
    assert min(merged) == f"{first}={genuine[first]}&{second}"  # it still sorts first
    merged["sig"] = sig
    response = Client().post(url(kind), merged)
    assert response.status_code == 400
    assert "&" in response.content.decode()
    assert nothing_recorded()
    # Control: the genuine webhook, same signature, is accepted.
    assert Client().post(url(kind), {**genuine, "sig": sig}).status_code == 200


# --- item 8: a reply converts only its own account's message -----------------------------------

OTHER_KEY = "other-key"


@pytest.fixture
def two_accounts(settings: Any) -> None:
    configure(settings, ACCOUNTS={OTHER_KEY: {"API_SECRET": "other-secret"}})


def post_reply(api_key: str) -> InboundMessage:
    Client().post(url("inbound"), reply(**{"api-key": api_key}))
    return InboundMessage.objects.order_by("pk").last()  # type: ignore[return-value]


@pytest.mark.usefixtures("two_accounts")
def test_a_reply_to_one_account_never_converts_another_accounts_message() -> None:
    ago = timezone.now() - timedelta(minutes=5)
    record_message("0A00000000000AC1", recipient=NUMBER, sent_at=ago, api_key=OTHER_KEY)
    assert post_reply(DEFAULT_API_KEY).outcome == ReplyOutcome.UNMATCHED
    assert not Conversion.objects.exists()
    # The same number replying to the account that sent it converts it.
    assert post_reply(OTHER_KEY).outcome == ReplyOutcome.CONVERTED


@pytest.mark.usefixtures("two_accounts")
def test_the_default_account_owns_messages_recorded_without_a_key() -> None:
    ago = timezone.now() - timedelta(minutes=5)
    record_message("0A00000000000AC2", recipient=NUMBER, sent_at=ago)
    assert post_reply(OTHER_KEY).outcome == ReplyOutcome.UNMATCHED
    assert post_reply(DEFAULT_API_KEY).outcome == ReplyOutcome.CONVERTED


@pytest.mark.usefixtures("two_accounts")
def test_the_latest_message_of_the_replys_account_wins_over_a_later_one_of_another() -> None:
    now = timezone.now()
    record_message("0A00000000000AC3", recipient=NUMBER, sent_at=now - timedelta(minutes=9))
    record_message(
        "0A00000000000AC4", recipient=NUMBER, sent_at=now - timedelta(minutes=2), api_key=OTHER_KEY
    )
    assert post_reply(DEFAULT_API_KEY).outcome == ReplyOutcome.CONVERTED
    assert list(Conversion.objects.values_list("message__message_id", flat=True)) == [
        "0A00000000000AC3"
    ]


# --- item 10: W003 however the webhooks are routed ---------------------------------------------

#: A URLconf naming the webhook view directly: no include(), no namespace.
urlpatterns = [path("hooks/vonage/inbound/", webhook_views.inbound)]


def deploy_ids() -> list[str]:
    return [str(m.id) for m in static_checks(include_deployment_checks=True)]


def test_w003_fires_when_the_webhook_view_is_routed_directly(settings: Any) -> None:
    settings.ROOT_URLCONF = __name__
    assert W003 in deploy_ids()
    configure(settings, SIGNATURE_SECRET=SECRET)
    assert W003 not in deploy_ids()
