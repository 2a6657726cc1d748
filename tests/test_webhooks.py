"""The inbound-SMS webhook: a reply marks the message it answers converted, with no user code.

Driven over HTTP: Django's test client for the request shapes and edge cases, and the sandbox
really posting to a live server (and from its CLI) for the whole path, Vonage to report.
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from pathlib import Path
from typing import Any

import pytest
import requests
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_nexmo_conversion import (
    mark_converted,
    record_message,
    record_sms_response,
    report_pending,
)
from django_nexmo_conversion.backends.locmem import SentReport, outbox
from django_nexmo_conversion.models import (
    Conversion,
    InboundMessage,
    ReplyOutcome,
    SentMessage,
    Status,
)
from django_nexmo_conversion.sandbox import Sandbox
from django_nexmo_conversion.sandbox.sender import WEBHOOK_FORMATS, WebhookSender
from django_nexmo_conversion.webhooks import InboundReply

from .helpers import HANDSET, configure, free_port, post_webhook, reply_params
from .processes import sandbox_cli

pytestmark = pytest.mark.django_db

NUMBER = HANDSET
OTHER = "447700900999"
SENDER = WebhookSender()  # unsigned: these settings have no signature secret


def inbound_url() -> str:
    return reverse("django_nexmo_conversion:inbound")


def ago(**delta: float) -> datetime:
    return timezone.now() - timedelta(**delta)


def sent(message_id: str, *, to: str = NUMBER, minutes_ago: float = 10) -> SentMessage:
    return record_message(message_id, recipient=to, sent_at=ago(minutes=minutes_ago))


def post(client: Client, params: dict[str, str]) -> Any:
    return post_webhook(client, "inbound", params)


def whole_seconds(value: datetime) -> datetime:
    return value.replace(microsecond=0)


def conversions() -> list[tuple[str, bool]]:
    return sorted(Conversion.objects.values_list("message__message_id", "delivered"))


# --- what a reply does ---------------------------------------------------------------------------


def test_a_reply_converts_the_message_dated_by_the_reply(client: Client) -> None:
    message = sent("0A00000000000001", minutes_ago=10)
    replied_at = whole_seconds(ago(minutes=2))
    params = reply_params(at=replied_at)

    response = post(client, params)

    assert response.status_code == 200
    assert response.content == b""
    conversion = Conversion.objects.get()
    assert conversion.message == message
    assert conversion.delivered is True
    assert conversion.timestamp == replied_at
    assert conversion.status == Status.PENDING
    row = InboundMessage.objects.get()
    assert (row.message_id, row.matched, row.outcome) == (
        params["messageId"],
        message,
        ReplyOutcome.CONVERTED,
    )
    assert row.replied_at == replied_at
    assert row.api_key == "sandbox-key"


@pytest.mark.parametrize("shape", WEBHOOK_FORMATS)
def test_every_shape_vonage_sends(client: Client, shape: str) -> None:
    sent("0A00000000000002")
    params = reply_params()
    if shape == "GET":
        response = client.get(inbound_url(), params)
    elif shape == "POST":
        response = client.post(inbound_url(), params)
    else:
        response = client.post(inbound_url(), json.dumps(params), content_type="application/json")
    assert response.status_code == 200
    assert conversions() == [("0A00000000000002", True)]
    assert InboundMessage.objects.get().message_id == params["messageId"]


def test_json_values_that_are_not_strings_are_read_as_their_json_text(client: Client) -> None:
    sent("0A00000000000003")
    params: dict[str, object] = {**reply_params(), "concat": False, "concat-total": 1}
    response = client.post(inbound_url(), json.dumps(params), content_type="application/json")
    assert response.status_code == 200
    assert conversions() == [("0A00000000000003", True)]


def test_a_post_with_its_parameters_in_the_query_string_works_too(client: Client) -> None:
    sent("0A00000000000004")
    params = reply_params()
    response = client.post(f"{inbound_url()}?{requests.compat.urlencode(params)}")
    assert response.status_code == 200
    assert conversions() == [("0A00000000000004", True)]


def test_the_same_message_id_twice_changes_nothing(client: Client) -> None:
    sent("0A00000000000005")
    params = reply_params(at=whole_seconds(ago(minutes=3)))
    assert post(client, params).status_code == 200
    first = Conversion.objects.get()
    inbound = InboundMessage.objects.get()

    # Vonage sends it again (it never saw our 200), later, even after the report went out.
    Conversion.objects.update(status=Status.REPORTED, reported_at=timezone.now())
    assert post(client, params).status_code == 200

    assert list(Conversion.objects.values_list("pk", "timestamp", "status")) == [
        (first.pk, first.timestamp, Status.REPORTED)
    ]
    assert list(InboundMessage.objects.all()) == [inbound]
    assert InboundMessage.objects.get().outcome == ReplyOutcome.CONVERTED


def test_a_second_reply_finds_the_message_already_converted(client: Client) -> None:
    message = sent("0A00000000000006")
    post(client, reply_params("YES"))
    post(client, reply_params("YES AGAIN"))
    assert conversions() == [("0A00000000000006", True)]
    outcomes = list(InboundMessage.objects.order_by("pk").values_list("matched", "outcome"))
    assert outcomes == [
        (message.pk, ReplyOutcome.CONVERTED),
        (message.pk, ReplyOutcome.ALREADY_CONVERTED),
    ]


def test_a_reply_upgrades_a_pending_non_conversion(client: Client) -> None:
    message = sent("0A00000000000007")
    mark_converted(message, delivered=False)
    post(client, reply_params())
    assert conversions() == [("0A00000000000007", True)]
    assert InboundMessage.objects.get().outcome == ReplyOutcome.CONVERTED


def test_a_reported_non_conversion_stays_as_it_was(client: Client) -> None:
    message = sent("0A00000000000008")
    mark_converted(message, delivered=False)
    Conversion.objects.update(status=Status.REPORTED)
    post(client, reply_params())
    assert conversions() == [("0A00000000000008", False)]
    assert InboundMessage.objects.get().outcome == ReplyOutcome.ALREADY_CONVERTED


def test_a_reply_matching_nothing_is_acknowledged_and_ignored(client: Client) -> None:
    sent("0A00000000000009", to=OTHER)
    response = post(client, reply_params(msisdn=NUMBER))
    assert response.status_code == 200
    assert conversions() == []
    row = InboundMessage.objects.get()
    assert (row.matched, row.outcome) == (None, ReplyOutcome.UNMATCHED)


def test_an_alphanumeric_sender_matches_nothing(client: Client) -> None:
    sent("0A0000000000000A")
    assert post(client, reply_params(msisdn="VONAGE")).status_code == 200
    assert conversions() == []


def test_a_sender_with_no_digits_never_matches_messages_recorded_without_a_number(
    client: Client,
) -> None:
    record_message("0A0000000000002A")  # no recipient: its hash is empty
    assert post(client, reply_params(msisdn="+ ()")).status_code == 200
    assert conversions() == []
    assert InboundMessage.objects.get().outcome == ReplyOutcome.UNMATCHED


def test_only_sms_are_matched_not_calls(client: Client) -> None:
    record_message("63f61863-4a51-4f6b-86e1-46edebcf9356", channel="voice", recipient=NUMBER)
    post(client, reply_params())
    assert conversions() == []


# --- the reply window and which message wins -----------------------------------------------------


def test_the_window_is_24_hours_by_default(client: Client) -> None:
    record_message("0A0000000000000B", recipient=NUMBER, sent_at=ago(hours=24, minutes=5))
    post(client, reply_params())
    assert conversions() == []
    record_message("0A0000000000000C", recipient=NUMBER, sent_at=ago(hours=23, minutes=55))
    post(client, reply_params())
    assert conversions() == [("0A0000000000000C", True)]


def test_reply_window_setting(client: Client, settings: Any) -> None:
    configure(settings, REPLY_WINDOW=3600)
    sent("0A0000000000000D", minutes_ago=90)
    post(client, reply_params())
    assert conversions() == []
    sent("0A0000000000000E", minutes_ago=50)
    post(client, reply_params())
    assert conversions() == [("0A0000000000000E", True)]


def test_the_window_is_counted_from_the_reply_not_from_its_arrival(client: Client) -> None:
    # Vonage retries for a day: a reply that arrives late is judged by when it was sent.
    sent("0A0000000000000F", minutes_ago=60 * 30)  # 30 hours ago
    post(client, reply_params(at=whole_seconds(ago(hours=29))))
    assert conversions() == [("0A0000000000000F", True)]


def test_the_latest_message_to_that_number_wins(client: Client) -> None:
    sent("0A00000000000010", minutes_ago=180)
    latest = sent("0A00000000000011", minutes_ago=60)
    sent("0A00000000000012", to=OTHER, minutes_ago=30)  # later, but to someone else
    post(client, reply_params())
    assert conversions() == [("0A00000000000011", True)]
    assert InboundMessage.objects.get().matched == latest


def test_a_message_sent_after_the_reply_is_not_what_it_answers(client: Client) -> None:
    sent("0A00000000000013", minutes_ago=180)
    sent("0A00000000000014", minutes_ago=60)
    post(client, reply_params(at=whole_seconds(ago(hours=2))))  # a late delivery of an older reply
    assert conversions() == [("0A00000000000013", True)]


def test_a_long_sms_is_matched_by_its_first_part_and_every_part_converts(client: Client) -> None:
    parts = record_sms_response(
        {
            "message-count": "2",
            "messages": [
                {"to": NUMBER, "message-id": "0A00000000000015", "status": "0"},
                {"to": NUMBER, "message-id": "0A00000000000016", "status": "0"},
            ],
        }
    )
    post(client, reply_params())
    assert conversions() == [("0A00000000000015", True), ("0A00000000000016", True)]
    assert InboundMessage.objects.get().matched == parts[0]


# --- privacy -------------------------------------------------------------------------------------


def test_hashed_matching_needs_no_stored_number(client: Client, settings: Any) -> None:
    configure(settings, RECIPIENT_STORAGE="none")
    message = record_message("0A00000000000017", recipient="+44 7700 900123")
    assert message.recipient == ""
    post(client, reply_params(msisdn=NUMBER))  # Vonage writes the number as digits only
    assert conversions() == [("0A00000000000017", True)]


def test_neither_the_number_nor_the_text_is_stored_or_logged(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    sent("0A00000000000018")
    text = "Yes-please-9871"
    with caplog.at_level(logging.DEBUG, logger="django_nexmo_conversion"):
        post(client, reply_params(text))
    row = InboundMessage.objects.get()
    stored = " ".join(str(v) for v in InboundMessage.objects.values().get().values())
    assert NUMBER not in stored
    assert text not in stored
    assert row.sender_hash == SentMessage.objects.get().recipient_hash
    assert "0A00000000000018" in caplog.text  # the log says what happened ...
    assert NUMBER not in caplog.text  # ... without the number
    assert text not in caplog.text


def test_the_reply_repr_hides_the_number_and_text() -> None:
    from django_nexmo_conversion.webhooks import parse_inbound

    parsed = parse_inbound(reply_params("secret words"))
    assert NUMBER not in repr(parsed)
    assert "secret words" not in repr(parsed)


# --- REPLY_FILTER --------------------------------------------------------------------------------

FILTER_CALLS: list[tuple[InboundReply, SentMessage]] = []


def only_yes(reply: InboundReply, message: SentMessage) -> bool:
    FILTER_CALLS.append((reply, message))
    return reply.text.strip().upper() == "YES"


def exploding_filter(reply: InboundReply, message: SentMessage) -> bool:
    raise RuntimeError("the filter broke")


def test_reply_filter_decides_per_reply(client: Client, settings: Any) -> None:
    configure(settings, REPLY_FILTER="tests.test_webhooks.only_yes")
    FILTER_CALLS.clear()
    message = sent("0A00000000000019")

    assert post(client, reply_params("No thanks")).status_code == 200
    assert conversions() == []
    assert InboundMessage.objects.get().outcome == ReplyOutcome.FILTERED

    assert post(client, reply_params(" yes ")).status_code == 200
    assert conversions() == [("0A00000000000019", True)]
    [(first, matched), (second, _)] = FILTER_CALLS
    assert (first.text, first.msisdn, matched) == ("No thanks", NUMBER, message)
    assert second.text == " yes "
    assert first.replied_at.tzinfo is not None
    assert first.params["messageId"] == first.message_id


def test_reply_filter_is_not_asked_about_replies_matching_nothing(
    client: Client, settings: Any
) -> None:
    configure(settings, REPLY_FILTER="tests.test_webhooks.only_yes")
    FILTER_CALLS.clear()
    post(client, reply_params("YES"))
    assert FILTER_CALLS == []
    assert InboundMessage.objects.get().outcome == ReplyOutcome.UNMATCHED


def test_a_broken_filter_records_nothing_so_vonage_sends_it_again(
    settings: Any,
) -> None:
    configure(settings, REPLY_FILTER="tests.test_webhooks.exploding_filter")
    sent("0A0000000000001A")
    response = Client(raise_request_exception=False).post(inbound_url(), reply_params())
    assert response.status_code == 500
    assert InboundMessage.objects.count() == 0
    assert conversions() == []


# --- HTTP behaviour ------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["put", "patch", "delete", "head", "options"])
def test_only_get_and_post(client: Client, method: str) -> None:
    sent("0A0000000000001B")
    response = getattr(client, method)(inbound_url())
    assert response.status_code == 405
    assert set(response["Allow"].split(", ")) == {"GET", "POST"}
    assert InboundMessage.objects.count() == 0


def test_no_csrf_token_needed() -> None:
    sent("0A0000000000001C")
    response = Client(enforce_csrf_checks=True).post(inbound_url(), reply_params())
    assert response.status_code == 200
    assert conversions() == [("0A0000000000001C", True)]


def test_an_empty_request_is_a_reachability_check(client: Client) -> None:
    assert client.get(inbound_url()).status_code == 200
    assert client.post(inbound_url()).status_code == 200
    assert InboundMessage.objects.count() == 0


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"msisdn": ""}, "msisdn"),
        ({"messageId": ""}, "messageId"),
        ({"messageId": "has space"}, "messageId"),
        ({"messageId": "X" * 65}, "messageId"),
        ({"message-timestamp": "2024-13-01 00:00:00"}, "message-timestamp"),
        ({"message-timestamp": "yesterday"}, "message-timestamp"),
        ({"api-key": "two words"}, "api-key"),
    ],
)
def test_bad_parameters_answer_400_naming_them_and_record_nothing(
    client: Client, change: dict[str, str], named: str
) -> None:
    sent("0A0000000000001D")
    params = {**reply_params(), **change}
    response = post(client, params)
    assert response.status_code == 400
    assert named in response.content.decode()
    assert response["Content-Type"].startswith("text/plain")
    assert InboundMessage.objects.count() == 0
    assert conversions() == []


@pytest.mark.parametrize("body", ["{not json", "[1, 2]", '"text"', b"\xff\xfe"])
def test_a_json_body_that_is_not_an_object_is_refused(client: Client, body: str | bytes) -> None:
    response = client.post(inbound_url(), body, content_type="application/json")
    assert response.status_code == 400
    assert b"JSON" in response.content
    assert InboundMessage.objects.count() == 0


def test_without_message_timestamp_the_unix_timestamp_or_now_dates_it(client: Client) -> None:
    sent("0A0000000000001E")
    params = reply_params()
    del params["message-timestamp"]
    params["timestamp"] = str(int(ago(minutes=4).timestamp()))
    post(client, params)
    assert InboundMessage.objects.get().replied_at == datetime.fromtimestamp(
        int(params["timestamp"]), tz=dt_timezone.utc
    )
    params = reply_params()
    del params["message-timestamp"]
    before = timezone.now()
    post(client, params)
    assert InboundMessage.objects.order_by("pk").last().replied_at >= before  # type: ignore[union-attr]


def test_a_reply_dated_in_the_future_is_dated_now(client: Client) -> None:
    sent("0A0000000000001F")
    post(client, reply_params(at=timezone.now() + timedelta(hours=2)))
    assert Conversion.objects.get().timestamp <= timezone.now()


# --- reporting: through the normal dispatch ------------------------------------------------------


def test_no_report_is_sent_inside_the_request_with_manual_dispatch(
    client: Client, nexmo_outbox: list[SentReport]
) -> None:
    sent("0A00000000000020")
    post(client, reply_params())
    assert outbox == []  # the backend's own list: answered without calling Nexmo
    assert report_pending().reported == 1
    assert [(r.message_id, r.delivered) for r in nexmo_outbox] == [("0A00000000000020", True)]


@pytest.mark.django_db(transaction=True)
def test_on_commit_dispatch_reports_once_the_webhook_commits(
    settings: Any, nexmo_outbox: list[SentReport]
) -> None:
    configure(settings, DISPATCH="on_commit")
    sent("0A00000000000021")
    replied_at = whole_seconds(ago(minutes=1))
    Client().post(inbound_url(), reply_params(at=replied_at))
    [report] = nexmo_outbox
    assert (report.message_id, report.delivered) == ("0A00000000000021", True)
    assert report.timestamp == replied_at.astimezone(dt_timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


# --- the sandbox posting to a live server -------------------------------------------------------


@pytest.mark.sandbox
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("shape", WEBHOOK_FORMATS)
def test_the_sandbox_posts_a_reply_that_is_reported_to_nexmo(
    live_server: Any, nexmo_sandbox: Sandbox, shape: str
) -> None:
    message = sent("0A00000000000022")
    sender = WebhookSender.for_sandbox(nexmo_sandbox, webhook_format=shape)

    posted = sender.inbound(live_server.url + inbound_url(), msisdn=NUMBER, text="YES")

    assert (posted.status, posted.method) == (200, "GET" if shape == "GET" else "POST")
    assert Conversion.objects.get().message == message
    # The normal reporting path: the conversion reaches "Nexmo".
    assert report_pending().reported == 1
    [request] = nexmo_sandbox.reported()
    assert (request.form["message-id"], request.form["delivered"]) == ("0A00000000000022", "true")


@pytest.mark.sandbox
@pytest.mark.django_db(transaction=True)
def test_the_same_reply_posted_at_once_by_several_retries_counts_once(live_server: Any) -> None:
    message = sent("0A00000000000024")
    params = reply_params()
    url = live_server.url + inbound_url()
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: SENDER.post(url, params).status, range(8)))
    assert answers == [200] * 8
    assert InboundMessage.objects.get().matched == message
    assert conversions() == [("0A00000000000024", True)]


@pytest.mark.sandbox
@pytest.mark.django_db(transaction=True)
def test_the_sandbox_cli_posts_a_reply(live_server: Any) -> None:
    sent("0A00000000000023")
    url = live_server.url + inbound_url()
    result = sandbox_cli(
        "post-inbound", "--url", url, "--from", NUMBER, "--message-id", "0B00000000000001"
    )
    assert result.returncode == 0, result.stderr
    assert f"POST {url} messageId=0B00000000000001 (unsigned) -> 200" in result.stdout
    assert conversions() == [("0A00000000000023", True)]
    assert InboundMessage.objects.get().message_id == "0B00000000000001"


@pytest.mark.sandbox
def test_the_sandbox_cli_says_when_nothing_answers() -> None:
    result = sandbox_cli("post-inbound", "--url", "http://127.0.0.1:9/nexmo/webhooks/inbound/")
    assert result.returncode == 1
    assert "could not post to http://127.0.0.1:9/nexmo/webhooks/inbound/" in result.stderr


@pytest.mark.sandbox
@pytest.mark.django_db(transaction=True)
def test_the_sandbox_reports_a_refusal_and_does_not_follow_redirects(live_server: Any) -> None:
    posted = SENDER.inbound(live_server.url + inbound_url(), msisdn="")
    assert (posted.status, posted.ok) == (400, False)
    assert "msisdn" in posted.body
    # A URL Django redirects (APPEND_SLASH; the webhooks themselves answer without the
    # slash too): Vonage would not follow, nor do we.
    moved = SENDER.inbound(live_server.url + "/admin")
    assert moved.status == 301
    assert InboundMessage.objects.count() == 0


def test_the_sender_refuses_what_vonage_would_never_send() -> None:
    with pytest.raises(ValueError, match="signature method"):
        WebhookSender(signature_method="sha3")
    with pytest.raises(ValueError, match="webhook format"):
        WebhookSender(webhook_format="PUT")
    with pytest.raises(ValueError, match="timezone-aware"):
        SENDER.inbound_params(at=datetime(2024, 1, 1, 12, 0))
    with pytest.raises(ValueError, match="not an http"):
        SENDER.inbound("ftp://127.0.0.1/nexmo/webhooks/inbound/")


def test_sample_payloads_look_like_vonage_s() -> None:
    when = datetime(2024, 5, 1, 14, 30, 5, tzinfo=dt_timezone.utc)
    inbound = SENDER.inbound_params(msisdn=NUMBER, text="yes please", at=when)
    assert inbound["keyword"] == "YES"
    assert (inbound["type"], inbound["message-timestamp"]) == ("text", "2024-05-01 14:30:05")
    assert SENDER.inbound_params(text="Oui, merci ✓")["type"] == "unicode"
    receipt = SENDER.receipt_params(message_id="0A00000000000001", status="expired", at=when)
    assert (receipt["err-code"], receipt["scts"]) == ("1", "2405011430")
    assert "sig" not in inbound  # unsigned without a secret
    signed = WebhookSender(signature_secret="s").sign(inbound, now=1714573805)
    assert (signed["timestamp"], len(signed["nonce"]), len(signed["sig"])) == ("1714573805", 32, 32)


# --- the example project -------------------------------------------------------------------------


@pytest.mark.sandbox
@pytest.mark.own_database  # the demo runs on a SQLite file of its own
def test_the_demo_shows_a_reply_converting_a_message(tmp_path: Path) -> None:
    from tests.test_example_project import (
        DemoProcess,
        csrf_token,
        demo_env,
        statuses,
        wait_for_site,
    )

    site_port, sandbox_port = free_port(), free_port()
    process = DemoProcess(demo_env(tmp_path, site_port=site_port, sandbox_port=sandbox_port))
    try:
        site = f"http://127.0.0.1:{site_port}"
        wait_for_site(process, site + "/")
        browser = requests.Session()
        home = browser.get(site + "/", timeout=5)
        assert f"{site}/nexmo/webhooks/inbound/" in home.text  # the page names the webhook
        number = "447700900555"
        sent_page = browser.post(
            site + "/send/",
            data={"csrfmiddlewaretoken": csrf_token(home.text), "to": number},
            timeout=5,
        )
        [message_id] = statuses(sent_page.text)
        assert statuses(sent_page.text)[message_id] == "none"

        replied = browser.post(
            site + "/reply/",
            data={
                "csrfmiddlewaretoken": csrf_token(sent_page.text),
                "msisdn": number,
                "text": "YES",
            },
            timeout=15,
        )
        assert replied.status_code == 200
        assert "answered 200" in replied.text

        deadline = time.monotonic() + 30
        while statuses(browser.get(site + "/", timeout=5).text)[message_id] != "reported":
            assert time.monotonic() < deadline, process.output
            time.sleep(0.25)
        assert f"[sandbox] POST /conversions/sms message-id={message_id} -> 200" in process.output
        assert process.interrupt() == 0
    finally:
        process.kill()
