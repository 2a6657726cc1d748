"""conf.py: defaults, environment fallbacks, accounts, and rebuilding on setting_changed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from django_nexmo_conversion import conf
from django_nexmo_conversion.conf import Account, build_settings, get_settings

from .helpers import replace_configuration


@pytest.fixture(autouse=True)
def _no_credentials_in_env(no_env_credentials: None) -> Iterator[None]:
    """The developer's shell must not leak into these tests (nor the cache across them)."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def ids(resolved: conf.ConversionSettings) -> list[str]:
    return [p.id for p in resolved.problems]


def test_defaults() -> None:
    resolved = build_settings({"API_KEY": "k", "API_SECRET": "s"})
    assert resolved.problems == ()
    assert resolved.base_url == "https://api.nexmo.com"
    assert resolved.timeout == 10
    assert resolved.max_attempts == 8
    assert resolved.retry_backoff == 60
    assert resolved.retry_backoff_max == 21600
    assert resolved.dispatch == "background"
    assert resolved.sweep_interval == 30
    assert resolved.concurrency == 8
    assert resolved.rate_limit == 0
    assert resolved.backend == "django_nexmo_conversion.backends.http.HttpBackend"
    assert resolved.non_conversion_after is None
    assert resolved.accounts == {}
    assert resolved.default_account == Account(api_key="k", api_secret="s")
    assert resolved.default_account.signature_method == "md5hash"
    assert resolved.api_key == "k"


def test_base_url_trailing_slash_is_dropped() -> None:
    resolved = build_settings({"API_KEY": "k", "API_SECRET": "s", "BASE_URL": "https://x.test/"})
    assert resolved.base_url == "https://x.test"


def test_env_nexmo_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEXMO_API_KEY", "env-key")
    monkeypatch.setenv("NEXMO_API_SECRET", "env-secret")
    monkeypatch.setenv("NEXMO_SIGNATURE_SECRET", "env-sig")
    account = build_settings({}).default_account
    assert account == Account(
        api_key="env-key", api_secret="env-secret", signature_secret="env-sig"
    )


def test_env_vonage_variables_are_the_second_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VONAGE_API_KEY", "v-key")
    monkeypatch.setenv("VONAGE_API_SECRET", "v-secret")
    monkeypatch.setenv("VONAGE_SIGNATURE_SECRET", "v-sig")
    assert build_settings({}).default_account == Account(
        api_key="v-key", api_secret="v-secret", signature_secret="v-sig"
    )
    monkeypatch.setenv("NEXMO_API_KEY", "n-key")
    monkeypatch.setenv("NEXMO_API_SECRET", "n-secret")
    account = build_settings({}).default_account
    assert account is not None
    assert (account.api_key, account.api_secret) == ("n-key", "n-secret")


def test_settings_win_over_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEXMO_API_KEY", "env-key")
    monkeypatch.setenv("NEXMO_API_SECRET", "env-secret")
    account = build_settings({"API_KEY": "set-key", "API_SECRET": "set-secret"}).default_account
    assert account == Account(api_key="set-key", api_secret="set-secret")


def test_get_settings_reads_env_after_cache_clear(
    monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    replace_configuration(
        settings, {"BACKEND": "django_nexmo_conversion.backends.dummy.DummyBackend"}
    )
    assert get_settings().default_account is None
    monkeypatch.setenv("VONAGE_API_KEY", "v-key")
    monkeypatch.setenv("VONAGE_API_SECRET", "v-secret")
    get_settings.cache_clear()
    assert get_settings().api_key == "v-key"


def test_account_for_uses_per_key_credentials_and_default_otherwise() -> None:
    resolved = build_settings(
        {
            "API_KEY": "main",
            "API_SECRET": "main-secret",
            "ACCOUNTS": {
                "twofa": {"SIGNATURE_SECRET": "sig", "SIGNATURE_METHOD": "sha256"},
                "other": {"API_SECRET": "other-secret"},
            },
        }
    )
    assert resolved.problems == ()
    assert resolved.account_for("twofa") == Account(
        api_key="twofa", signature_secret="sig", signature_method="sha256"
    )
    assert resolved.account_for("other").api_secret == "other-secret"
    assert resolved.account_for("unknown").api_key == "main"
    assert resolved.account_for(None).api_key == "main"
    assert resolved.account_for("").api_key == "main"


def test_accounts_alone_are_enough_for_their_keys() -> None:
    resolved = build_settings({"ACCOUNTS": {"only": {"API_SECRET": "s"}}})
    assert "E001" not in ids(resolved)
    assert resolved.account_for("only").api_secret == "s"
    with pytest.raises(ImproperlyConfigured, match=r"NEXMO_CONVERSION\['API_KEY'\]"):
        resolved.account_for("someone-else")


def test_account_for_without_credentials_names_the_setting() -> None:
    resolved = build_settings({})
    assert "E001" in ids(resolved)
    with pytest.raises(ImproperlyConfigured) as info:
        resolved.account_for("k")
    assert "NEXMO_CONVERSION['API_KEY']" in str(info.value)
    assert "NEXMO_CONVERSION['API_SECRET']" in str(info.value)


def test_raise_for_problems_names_the_setting() -> None:
    resolved = build_settings({"API_KEY": "k", "API_SECRET": "s", "DISPATCH": "carrier-pigeon"})
    with pytest.raises(ImproperlyConfigured, match=r"NEXMO_CONVERSION\['DISPATCH'\]"):
        resolved.raise_for_problems()


def test_warnings_do_not_raise() -> None:
    resolved = build_settings({"API_KEY": "k", "API_SECRET": "s", "APIKEY": "typo"})
    assert ids(resolved) == ["W002"]
    resolved.raise_for_problems()


def test_setting_changed_rebuilds(settings: Any) -> None:
    before = get_settings()
    assert get_settings() is before  # cached
    settings.NEXMO_CONVERSION = {**settings.NEXMO_CONVERSION, "TIMEOUT": 7, "API_KEY": "new"}
    after = get_settings()
    assert after is not before
    assert after.timeout == 7
    assert after.api_key == "new"


def test_unrelated_setting_change_keeps_the_cache(settings: Any) -> None:
    before = get_settings()
    settings.USE_I18N = not settings.USE_I18N
    assert get_settings() is before


def test_account_repr_hides_secrets() -> None:
    plain = Account(api_key="k", api_secret="hidden-1", auth="params")
    basic = Account(api_key="k", api_secret="hidden-1")
    assert "hidden" not in repr(basic)
    assert "basic auth" in repr(basic)
    signed = Account(api_key="k", api_secret="hidden-1", signature_secret="hidden-2")
    assert "hidden" not in repr(plain)
    assert "hidden" not in str(plain)
    assert "hidden" not in repr(signed)
    assert "'k'" in repr(plain)
    assert "key+secret" in repr(plain)
    assert "signed (md5hash)" in repr(signed)
    resolved = build_settings(
        {
            "API_KEY": "k",
            "API_SECRET": "hidden-1",
            "ACCOUNTS": {"b": {"SIGNATURE_SECRET": "hidden-2"}},
        }
    )
    assert "hidden" not in repr(resolved)


def test_non_dict_setting_is_reported_not_raised() -> None:
    resolved = build_settings(["API_KEY"])
    assert ids(resolved)[0] == "E000"
    assert build_settings(None).base_url == "https://api.nexmo.com"
