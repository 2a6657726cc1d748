"""Signed webhooks: with a signature secret configured, only a valid, fresh signature gets in.

Signatures here come from Vonage's own SDK (HMAC methods) or an independent md5hash, not from
the app's signing module, so the app is checked against what Vonage really sends; the sandbox
(which does share the app's signing module) then posts signed webhooks to a live server.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
import time
from typing import Any

import pytest
from django.core import checks
from django.test import Client
from django.urls import reverse
from vonage_http_client.auth import Auth

from django_nexmo_conversion import record_message
from django_nexmo_conversion.models import Conversion, InboundMessage, SentMessage
from django_nexmo_conversion.sandbox import AccountSpec, Sandbox
from django_nexmo_conversion.sandbox.sender import WEBHOOK_FORMATS, WebhookSender
from django_nexmo_conversion.transport.signing import SIGNATURE_METHODS

from .helpers import configure, static_checks
from .processes import sandbox_cli

pytestmark = pytest.mark.django_db

SECRET = "Wh-sig-secret-7d1c"
WRONG_SECRET = "not-the-secret-000"
NUMBER = "447700900123"
KINDS = ("inbound", "receipt")
PREFIX = "django_nexmo_conversion."


def url(kind: str) -> str:
    return reverse(f"django_nexmo_conversion:{kind}")


def vonage_sig(params: dict[str, str], *, secret: str, method: str) -> str:
    """The signature as Vonage computes it: its SDK for HMAC, the documented md5hash by hand."""
    if method == "md5hash":
        payload = "".join(
            f"&{name}={params[name].replace('&', '_').replace('=', '_')}"
            for name in sorted(params)
            if name != "sig"
        )
        return hashlib.md5((payload + secret).encode()).hexdigest()
    return Auth(api_key="k", signature_secret=secret, signature_method=method).sign_params(
        dict(params)
    )


def payload(kind: str, **extra: str) -> dict[str, str]:
    sender = WebhookSender()
    if kind == "inbound":
        params = sender.inbound_params(msisdn=NUMBER, text="YES & more = fun")
    else:
        params = sender.receipt_params(message_id="0A00000000000201", status="failed")
    return {**params, **extra}


def signed(
    kind: str,
    *,
    method: str,
    secret: str = SECRET,
    timestamp: float | None = None,
    **extra: str,
) -> dict[str, str]:
    params = payload(kind, **extra)
    params["timestamp"] = str(int(time.time() if timestamp is None else timestamp))
    params["nonce"] = "3f1c6b7e-2a4d-4e4f-9b0a-0c1d2e3f4a5b"
    params["sig"] = vonage_sig(params, secret=secret, method=method)
    return params


@pytest.fixture
def sms() -> SentMessage:
    # Sent to NUMBER (for replies) with the id the receipts are for.
    return record_message("0A00000000000201", recipient=NUMBER)


def applied(kind: str, sms: SentMessage) -> bool:
    """Did the webhook change anything?"""
    if kind == "inbound":
        return InboundMessage.objects.exists() or Conversion.objects.exists()
    sms.refresh_from_db()
    return bool(sms.delivery_status)


@pytest.fixture(params=SIGNATURE_METHODS)
def method(request: pytest.FixtureRequest, settings: Any) -> str:
    configure(settings, SIGNATURE_SECRET=SECRET, SIGNATURE_METHOD=request.param)
    return str(request.param)


# --- every method, both webhooks -----------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_valid_signature_is_accepted(
    client: Client, sms: SentMessage, method: str, kind: str
) -> None:
    response = client.post(url(kind), signed(kind, method=method))
    assert response.status_code == 200
    assert applied(kind, sms)


@pytest.mark.parametrize("kind", KINDS)
def test_a_valid_signature_is_accepted_by_get_too(
    client: Client, sms: SentMessage, method: str, kind: str
) -> None:
    assert client.get(url(kind), signed(kind, method=method)).status_code == 200
    assert applied(kind, sms)


@pytest.mark.parametrize("kind", KINDS)
def test_a_wrong_secret_is_refused(
    client: Client, sms: SentMessage, method: str, kind: str
) -> None:
    response = client.post(url(kind), signed(kind, method=method, secret=WRONG_SECRET))
    assert response.status_code == 403
    assert b"signature is not valid" in response.content
    assert not applied(kind, sms)


@pytest.mark.parametrize("kind", KINDS)
def test_another_method_is_refused(
    client: Client, sms: SentMessage, method: str, kind: str
) -> None:
    other = next(m for m in SIGNATURE_METHODS if m != method)
    assert client.post(url(kind), signed(kind, method=other)).status_code == 403
    assert not applied(kind, sms)


@pytest.mark.parametrize("kind", KINDS)
def test_a_missing_signature_is_refused(
    client: Client, sms: SentMessage, method: str, kind: str
) -> None:
    params = signed(kind, method=method)
    del params["sig"]
    response = client.post(url(kind), params)
    assert response.status_code == 403
    assert b"not signed" in response.content
    assert not applied(kind, sms)


@pytest.mark.parametrize("kind", KINDS)
def test_a_tampered_parameter_is_refused(
    client: Client, sms: SentMessage, method: str, kind: str
) -> None:
    params = signed(kind, method=method)
    params["messageId"] = "0A00000000000202"
    assert client.post(url(kind), params).status_code == 403
    assert not applied(kind, sms)
    assert InboundMessage.objects.count() == 0


@pytest.mark.parametrize("kind", KINDS)
# A minute clear of the 300-second limit: the signed timestamp is a whole second and a slow
# machine may take a moment before the view reads the clock, so 301 could land inside it.
@pytest.mark.parametrize("offset", [-360, -3600, 360, 3600])
def test_a_stale_or_future_timestamp_is_refused(
    client: Client, sms: SentMessage, method: str, kind: str, offset: int
) -> None:
    params = signed(kind, method=method, timestamp=time.time() + offset)
    response = client.post(url(kind), params)
    assert response.status_code == 403
    assert b"timestamp" in response.content
    assert not applied(kind, sms)


@pytest.mark.parametrize("kind", KINDS)
def test_a_timestamp_within_the_max_age_is_fresh(
    client: Client, sms: SentMessage, method: str, kind: str
) -> None:
    params = signed(kind, method=method, timestamp=time.time() - 240)
    assert client.post(url(kind), params).status_code == 200
    assert applied(kind, sms)


def test_webhook_max_age_setting(client: Client, settings: Any, sms: SentMessage) -> None:
    configure(settings, SIGNATURE_SECRET=SECRET, WEBHOOK_MAX_AGE=30)
    params = signed("receipt", method="md5hash", timestamp=time.time() - 60)
    assert client.post(url("receipt"), params).status_code == 403
    params = signed("receipt", method="md5hash", timestamp=time.time() - 10)
    assert client.post(url("receipt"), params).status_code == 200


@pytest.mark.parametrize("timestamp", [None, "", "soon", "1.5e9", "-5"])
def test_a_signature_without_a_usable_timestamp_is_refused(
    client: Client, settings: Any, sms: SentMessage, timestamp: str | None
) -> None:
    configure(settings, SIGNATURE_SECRET=SECRET)
    params = payload("inbound")
    if timestamp is not None:
        params["timestamp"] = timestamp
    params["sig"] = vonage_sig(params, secret=SECRET, method="md5hash")
    response = client.post(url("inbound"), params)
    assert response.status_code == 403
    assert b"timestamp" in response.content
    assert not applied("inbound", sms)


@pytest.mark.parametrize("sig", ["é" * 32, "zz" * 16, "abc", "0" * 32 + "'; --"])
def test_a_malformed_signature_is_refused_not_an_error(
    client: Client, settings: Any, sms: SentMessage, sig: str
) -> None:
    configure(settings, SIGNATURE_SECRET=SECRET)
    params = {**signed("inbound", method="md5hash"), "sig": sig}
    assert client.post(url("inbound"), params).status_code == 403
    assert not applied("inbound", sms)


def test_an_upper_case_signature_is_fine(client: Client, settings: Any, sms: SentMessage) -> None:
    configure(settings, SIGNATURE_SECRET=SECRET, SIGNATURE_METHOD="sha256")
    params = signed("inbound", method="sha256")
    params["sig"] = params["sig"].upper()
    assert client.post(url("inbound"), params).status_code == 200


def test_an_empty_reachability_check_needs_no_signature(
    client: Client, settings: Any, sms: SentMessage
) -> None:
    configure(settings, SIGNATURE_SECRET=SECRET)
    assert client.get(url("inbound")).status_code == 200
    assert not applied("inbound", sms)


def test_without_a_secret_unsigned_webhooks_are_accepted(client: Client, sms: SentMessage) -> None:
    assert client.post(url("inbound"), payload("inbound")).status_code == 200
    assert applied("inbound", sms)


# --- several accounts ----------------------------------------------------------------------------


def test_each_account_verifies_with_its_own_secret_and_method(
    client: Client, settings: Any, sms: SentMessage
) -> None:
    configure(
        settings,
        SIGNATURE_SECRET=SECRET,
        SIGNATURE_METHOD="md5hash",
        ACCOUNTS={"twofa-key": {"SIGNATURE_SECRET": "twofa-secret", "SIGNATURE_METHOD": "sha512"}},
    )
    theirs = signed("receipt", method="sha512", secret="twofa-secret", **{"api-key": "twofa-key"})
    ours = signed("receipt", method="md5hash", **{"api-key": "twofa-key"})
    assert client.post(url("receipt"), ours).status_code == 403
    assert client.post(url("receipt"), theirs).status_code == 200
    # An api-key we do not know falls back to the default account.
    unknown = signed("inbound", method="md5hash", **{"api-key": "someone-else"})
    assert client.post(url("inbound"), unknown).status_code == 200


def test_once_any_account_signs_an_account_without_a_secret_is_refused(
    client: Client, settings: Any, sms: SentMessage
) -> None:
    configure(
        settings,
        ACCOUNTS={"twofa-key": {"SIGNATURE_SECRET": "twofa-secret", "SIGNATURE_METHOD": "sha1"}},
    )
    # The default account (sandbox-key) has an API secret but no signature secret.
    response = client.post(url("inbound"), payload("inbound"))
    assert response.status_code == 403
    assert b"No signature secret" in response.content
    assert not applied("inbound", sms)
    twofa = signed("inbound", method="sha1", secret="twofa-secret", **{"api-key": "twofa-key"})
    assert client.post(url("inbound"), twofa).status_code == 200


# --- secrets stay secret -------------------------------------------------------------------------


def test_secrets_and_signatures_never_reach_responses_or_logs(
    client: Client, settings: Any, sms: SentMessage, caplog: pytest.LogCaptureFixture
) -> None:
    configure(settings, SIGNATURE_SECRET=SECRET, SIGNATURE_METHOD="sha256")
    good = signed("inbound", method="sha256")
    bad = signed("receipt", method="sha256", secret=WRONG_SECRET)
    with caplog.at_level(logging.DEBUG):
        responses = [
            client.post(url("inbound"), good),
            client.post(url("receipt"), bad),
            client.get(url("receipt"), {**bad, "sig": good["sig"]}),
        ]
    assert [r.status_code for r in responses] == [200, 403, 403]
    assert "Refused delivery-receipt webhook (403)" in caplog.text
    everything = caplog.text + "".join(r.content.decode() for r in responses)
    everything += " ".join(f"{k}={v}" for r in responses for k, v in r.items())
    for secret in (SECRET, WRONG_SECRET, good["sig"], bad["sig"]):
        assert secret not in everything


def test_the_sender_repr_hides_the_secret() -> None:
    sender = WebhookSender(signature_secret=SECRET, signature_method="sha1")
    posted_repr = repr(sender)
    assert SECRET not in posted_repr
    assert "signed (sha1)" in posted_repr


# --- the sandbox posts signed webhooks to a live server ------------------------------------------


@pytest.mark.sandbox
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("shape", WEBHOOK_FORMATS)
def test_signed_through_the_sandbox_every_method_and_shape(
    live_server: Any, settings: Any, shape: str
) -> None:
    for number, method in enumerate(SIGNATURE_METHODS):
        configure(settings, SIGNATURE_SECRET=SECRET, SIGNATURE_METHOD=method)
        message = record_message(f"0A0000000000030{number}", recipient=f"44770090030{number}")
        good = WebhookSender(signature_secret=SECRET, signature_method=method, webhook_format=shape)
        forged = WebhookSender(
            signature_secret=WRONG_SECRET, signature_method=method, webhook_format=shape
        )
        msisdn = message.recipient

        assert forged.inbound(live_server.url + url("inbound"), msisdn=msisdn).status == 403
        assert not Conversion.objects.filter(message=message).exists()
        assert good.inbound(live_server.url + url("inbound"), msisdn=msisdn).status == 200
        assert Conversion.objects.get(message=message).delivered is True

        receipt_url = live_server.url + url("receipt")
        assert forged.receipt(receipt_url, message_id=message.message_id).status == 403
        assert good.receipt(receipt_url, message_id=message.message_id).status == 200
        message.refresh_from_db()
        assert message.delivery_status == "delivered"
    assert InboundMessage.objects.count() == len(SIGNATURE_METHODS)


@pytest.mark.sandbox
@pytest.mark.django_db(transaction=True)
def test_from_the_sandbox_account_to_the_report_signed_both_ways(
    live_server: Any, settings: Any
) -> None:
    """The sandbox plays Vonage twice: it signs the reply it posts with the account's
    signature secret, and checks the signed conversion report the app then sends it."""
    account = AccountSpec(signature_secret=SECRET, signature_method="sha512")
    with Sandbox(accounts={"signed-key": account}) as sandbox:
        configure(
            settings,
            sandbox=sandbox,
            API_KEY="signed-key",
            API_SECRET=None,
            SIGNATURE_SECRET=SECRET,
            SIGNATURE_METHOD="sha512",
            DISPATCH="on_commit",
        )
        record_message("0A00000000000310", recipient=NUMBER, api_key="signed-key")
        sender = WebhookSender.for_sandbox(sandbox, "signed-key")
        posted = sender.inbound(live_server.url + url("inbound"), msisdn=NUMBER, text="YES")
        assert posted.status == 200
        assert "sig" in posted.params
        assert SECRET not in repr(posted)
        [report] = sandbox.reported()
        assert report.form["message-id"] == "0A00000000000310"
        assert report.form["api_key"] == "signed-key"
        assert "sig" in report.form


@pytest.mark.sandbox
@pytest.mark.django_db(transaction=True)
def test_the_sandbox_cli_signs_and_never_prints_the_secret(live_server: Any, settings: Any) -> None:
    configure(settings, SIGNATURE_SECRET=SECRET, SIGNATURE_METHOD="sha256")
    record_message("0A00000000000311", recipient=NUMBER)
    options = ["--url", live_server.url + url("inbound"), "--from", NUMBER, "--format", "POST-JSON"]

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        return sandbox_cli("post-inbound", *options, *extra)

    refused = run("--signature-secret", WRONG_SECRET, "--signature-method", "sha256")
    assert refused.returncode == 2
    assert "-> 403" in refused.stdout
    assert not Conversion.objects.exists()
    accepted = run("--signature-secret", SECRET, "--signature-method", "sha256")
    assert accepted.returncode == 0, accepted.stderr
    assert "(signed sha256) -> 200" in accepted.stdout
    assert Conversion.objects.get().message.message_id == "0A00000000000311"
    for result in (refused, accepted):
        assert SECRET not in result.stdout + result.stderr
        assert WRONG_SECRET not in result.stdout + result.stderr


# --- the system check ----------------------------------------------------------------------------


def deploy_ids() -> list[str]:
    """The webhook-signing deploy warning, if given (the test settings' sandbox account and
    loopback BASE_URL give W007 besides, which is not what these tests are about)."""
    found = static_checks(include_deployment_checks=True, tags=[checks.Tags.security])
    return [str(m.id) for m in found if str(m.id) == PREFIX + "W003"]


def test_unsigned_routed_webhooks_warn_on_deploy_checks() -> None:
    [message] = [
        m for m in static_checks(include_deployment_checks=True) if m.id == PREFIX + "W003"
    ]
    assert message.level == checks.WARNING
    assert "unsigned" in message.msg
    assert "SIGNATURE_SECRET" in (message.hint or "")
    # Not a plain `check`: unsigned webhooks are the norm on a developer's machine.
    assert PREFIX + "W003" not in [str(m.id) for m in static_checks()]


def test_a_signature_secret_silences_the_warning(settings: Any) -> None:
    configure(settings, SIGNATURE_SECRET=SECRET)
    assert deploy_ids() == []
    configure(
        settings,
        SIGNATURE_SECRET=None,
        ACCOUNTS={"other": {"API_SECRET": "s", "SIGNATURE_SECRET": SECRET}},
    )
    assert deploy_ids() == []


def test_no_warning_when_the_webhooks_are_not_routed(settings: Any) -> None:
    settings.ROOT_URLCONF = "tests.test_webhook_signatures"
    assert deploy_ids() == []


#: For the test above: a URLconf without the app's URLs.
urlpatterns: list[Any] = []
