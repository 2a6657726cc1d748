"""The request signature, against Vonage's published vectors and (when present) its own SDK."""

from __future__ import annotations

import hashlib
import hmac
import random
import string

import pytest

from django_nexmo_conversion.transport.signing import (
    SIGNATURE_METHODS,
    sign,
    signing_payload,
    verify,
)

SECRET = "s3cr3t"
PARAMS = {
    "api_key": "abc123",
    "message-id": "0A0000001234567B",
    "delivered": "true",
    "timestamp": "2020-01-01 12:00:00",
}
PAYLOAD = "&api_key=abc123&delivered=true&message-id=0A0000001234567B&timestamp=2020-01-01 12:00:00"


def test_payload_is_sorted_ampersand_pairs() -> None:
    assert signing_payload(PARAMS) == PAYLOAD.encode("utf-8")


def test_known_md5hash_vector() -> None:
    assert sign(PARAMS, secret=SECRET) == "2e6abbdb9db4db184588ce53919ed330"
    assert sign(PARAMS, secret=SECRET, method="md5hash") == "2e6abbdb9db4db184588ce53919ed330"


def test_known_sha256_vector() -> None:
    assert (
        sign(PARAMS, secret=SECRET, method="sha256")
        == "58fb1cbbe65eee9d4eb969bc77e7c822b3e7120e3c294755c06eb3988c394632"
    )


@pytest.mark.parametrize("method", ["md5", "sha1", "sha256", "sha512"])
def test_hmac_methods_match_an_independent_hmac(method: str) -> None:
    expected = hmac.new(SECRET.encode(), PAYLOAD.encode(), getattr(hashlib, method)).hexdigest()
    assert sign(PARAMS, secret=SECRET, method=method) == expected


def test_legacy_md5hash_is_md5_of_payload_then_secret() -> None:
    expected = hashlib.md5((PAYLOAD + SECRET).encode()).hexdigest()
    assert sign(PARAMS, secret=SECRET, method="md5hash") == expected


def test_methods_differ() -> None:
    assert len({sign(PARAMS, secret=SECRET, method=m) for m in SIGNATURE_METHODS}) == 5


def test_ampersand_and_equals_in_values_become_underscores() -> None:
    params = {"b": "x=1&y=2", "a": "&="}
    assert signing_payload(params) == b"&a=__&b=x_1_y_2"
    # Names are not rewritten, only values.
    assert sign(params, secret=SECRET) == hashlib.md5(b"&a=__&b=x_1_y_2" + b"s3cr3t").hexdigest()


def test_sig_is_excluded_from_the_payload() -> None:
    with_sig = {**PARAMS, "sig": "anything"}
    assert signing_payload(with_sig) == PAYLOAD.encode()
    assert sign(with_sig, secret=SECRET) == sign(PARAMS, secret=SECRET)


def test_parameters_sorted_by_name_whatever_the_insertion_order() -> None:
    reordered = dict(reversed(list(PARAMS.items())))
    assert list(reordered) != list(PARAMS)
    assert signing_payload(reordered) == PAYLOAD.encode()


def test_unicode_values_are_utf8() -> None:
    params = {"text": "héllo €"}
    assert signing_payload(params) == "&text=héllo €".encode()
    expected = hmac.new(b"k", "&text=héllo €".encode(), hashlib.sha1).hexdigest()
    assert sign(params, secret="k", method="sha1") == expected


def test_unicode_secret_is_utf8() -> None:
    expected = hmac.new("sécret".encode(), PAYLOAD.encode(), hashlib.sha256).hexdigest()
    assert sign(PARAMS, secret="sécret", method="sha256") == expected


@pytest.mark.parametrize("method", SIGNATURE_METHODS)
def test_verify_accepts_the_right_signature(method: str) -> None:
    params = {**PARAMS, "sig": sign(PARAMS, secret=SECRET, method=method)}
    assert verify(params, secret=SECRET, method=method) is True


@pytest.mark.parametrize("method", SIGNATURE_METHODS)
def test_verify_accepts_uppercase_hex(method: str) -> None:
    params = {**PARAMS, "sig": sign(PARAMS, secret=SECRET, method=method).upper()}
    assert verify(params, secret=SECRET, method=method) is True


def test_verify_rejects_wrong_secret_tampered_params_and_wrong_method() -> None:
    good = {**PARAMS, "sig": sign(PARAMS, secret=SECRET, method="sha256")}
    assert verify(good, secret="other", method="sha256") is False
    assert verify({**good, "delivered": "false"}, secret=SECRET, method="sha256") is False
    assert verify(good, secret=SECRET, method="sha512") is False


def test_verify_without_sig_is_false() -> None:
    assert verify(PARAMS, secret=SECRET) is False
    assert verify({**PARAMS, "sig": ""}, secret=SECRET) is False


def test_unknown_method_is_a_value_error_naming_it() -> None:
    with pytest.raises(ValueError, match="'sha3_256'"):
        sign(PARAMS, secret=SECRET, method="sha3_256")
    with pytest.raises(ValueError, match="'MD5HASH'"):
        verify({**PARAMS, "sig": "00"}, secret=SECRET, method="MD5HASH")


def _random_params(rng: random.Random) -> dict[str, str]:
    alphabet = string.ascii_letters + string.digits + " -_:&=.+/é€"
    params = {
        "".join(rng.choices(string.ascii_lowercase + "-_", k=rng.randint(1, 10))): "".join(
            rng.choices(alphabet, k=rng.randint(0, 24))
        )
        for _ in range(rng.randint(1, 6))
    }
    # The SDK invents a timestamp when there is none; ours always has one.
    params["timestamp"] = "2024-05-01 12:30:00"
    return params


@pytest.mark.parametrize("method", ["md5", "sha1", "sha256", "sha512"])
def test_agrees_with_the_vonage_sdk(method: str) -> None:
    """Byte-for-byte agreement with Vonage's Python SDK v4 (``vonage`` is a test extra)."""
    auth_module = pytest.importorskip("vonage_http_client.auth")
    rng = random.Random(f"vonage-{method}")
    for _ in range(25):
        params = _random_params(rng)
        secret = "".join(rng.choices(string.ascii_letters + string.digits, k=16))
        auth = auth_module.Auth(api_key="k", signature_secret=secret, signature_method=method)
        assert sign(params, secret=secret, method=method) == auth.sign_params(dict(params))
        # And the SDK's own check accepts what we produce.
        signed = {**params, "sig": sign(params, secret=secret, method=method)}
        assert auth.check_signature(signed) is True


def test_verify_refuses_a_non_ascii_signature_without_crashing():
    params = {"api_key": "abc123", "message-id": "X", "sig": "é" * 32}
    assert verify(params, secret="s3cr3t") is False
