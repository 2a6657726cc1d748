"""System checks: each misconfiguration gives its stable id, through Django's own runner."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from django.apps import apps
from django.core import checks

from django_nexmo_conversion import conf
from django_nexmo_conversion.checks import check_settings

from .helpers import replace_configuration, static_checks

pytestmark = pytest.mark.usefixtures("no_env_credentials")

PREFIX = "django_nexmo_conversion."
GOOD = {
    "API_KEY": "k",
    "API_SECRET": "s",
    "BACKEND": "django_nexmo_conversion.backends.dummy.DummyBackend",
}


def our_messages() -> list[checks.CheckMessage]:
    # Only our app's checks (and no database: ``static_checks``).
    ours = [apps.get_app_config("django_nexmo_conversion")]
    return [m for m in static_checks(app_configs=ours) if str(m.id).startswith(PREFIX)]


def our_ids() -> list[str]:
    return [str(m.id) for m in our_messages()]


def test_test_settings_have_no_problems() -> None:
    assert our_messages() == []
    assert check_settings() == []


def test_check_is_registered_with_django() -> None:
    assert check_settings in checks.registry.registry.get_checks()


@pytest.mark.parametrize(
    ("overrides", "expected_id"),
    [
        ({"SIGNATURE_METHOD": "sha3_256"}, "E003"),
        ({"ACCOUNTS": {"two": {"API_SECRET": "s", "SIGNATURE_METHOD": "md4"}}}, "E003"),
        ({"DISPATCH": "sync"}, "E004"),
        ({"TIMEOUT": 0}, "E005"),
        ({"TIMEOUT": "10"}, "E005"),
        ({"TIMEOUT": True}, "E005"),
        ({"MAX_ATTEMPTS": 0}, "E005"),
        ({"MAX_ATTEMPTS": 2.5}, "E005"),
        ({"CONCURRENCY": 0}, "E005"),
        ({"RATE_LIMIT": -1}, "E005"),
        ({"RETRY_BACKOFF": 100, "RETRY_BACKOFF_MAX": 10}, "E005"),
        ({"TIMEOUT": 30, "LEASE_SECONDS": 20}, "E005"),
        ({"NON_CONVERSION_AFTER": 0}, "E005"),
        ({"ACCOUNTS": ["k"]}, "E006"),
        ({"ACCOUNTS": {"k": "just-a-secret"}}, "E006"),
        ({"BACKEND": "no.such.module.Backend"}, "E007"),
        ({"BACKEND": "django_nexmo_conversion.backends.http.NoSuchBackend"}, "E007"),
        ({"REPLY_FILTER": "no.such.filter"}, "E007"),
        ({"RECIPIENT_STORAGE": "partial"}, "E008"),
        ({"LINK_ALLOWED_HOSTS": "example.com"}, "E009"),
        ({"LINK_ALLOWED_HOSTS": ["ok.test", 3]}, "E009"),
        ({"LINK_ALLOWED_HOSTS": 5}, "E009"),
        ({"LINK_ALLOWED_HOSTS": True}, "E009"),
        ({"CELERY_TASK_OPTIONS": "nexmo"}, "E010"),
        ({"DJANGO_TASKS_USING": ["default"]}, "E010"),
        ({"RATE_LIMIT": 5, "RATE_LIMIT_CACHE": "no-such-cache"}, "E011"),
        ({"AUTH": "bearer"}, "E012"),
        ({"AUTH": None}, "E012"),
        ({"ACCOUNTS": {"two": {"API_SECRET": "s", "AUTH": "header"}}}, "E012"),
        ({"PROXIES": "http://proxy.example:3128"}, "E013"),
        ({"PROXIES": {"https": "proxy.example"}}, "E013"),
        ({"PROXIES": {"https": 3128}}, "E013"),
        ({"VERIFY": "/no/such/ca-bundle.pem"}, "E014"),
        ({"VERIFY": 1}, "E014"),
        ({"RETRY_BACKOFF": 1.5, "MAX_ATTEMPTS": 3.5}, "E005"),
    ],
)
def test_each_misconfiguration_has_its_id(
    settings: Any, overrides: dict[str, Any], expected_id: str
) -> None:
    replace_configuration(settings, {**GOOD, **overrides})
    assert our_ids() == [PREFIX + expected_id]
    (message,) = our_messages()
    assert message.level == checks.ERROR
    assert "NEXMO_CONVERSION" in message.msg
    assert message.hint, f"{expected_id} has no hint"


def test_a_proxy_url_in_a_problem_is_never_echoed(settings: Any) -> None:
    # A proxy URL may carry a password: the check names the key, never the value.
    replace_configuration(settings, {**GOOD, "PROXIES": {"https": "user:pw-Zq9@proxy"}})
    (message,) = our_messages()
    assert message.id == PREFIX + "E013"
    assert "pw-Zq9" not in f"{message.msg} {message.hint}"


def test_e000_not_a_dict(settings: Any) -> None:
    replace_configuration(settings, "API_KEY=k")
    assert PREFIX + "E000" in our_ids()


def deploy_messages() -> list[checks.CheckMessage]:
    """What ``manage.py check --deploy`` says about the app (its deploy checks included)."""
    ours = [apps.get_app_config("django_nexmo_conversion")]
    found = static_checks(app_configs=ours, include_deployment_checks=True)
    return [m for m in found if str(m.id).startswith(PREFIX) and m.id != PREFIX + "W003"]


def deploy_ids() -> list[str]:
    return sorted(str(m.id) for m in deploy_messages())


MISSING_CREDENTIALS = [
    {"BACKEND": GOOD["BACKEND"]},  # nothing at all
    {**GOOD, "API_SECRET": None, "SIGNATURE_SECRET": None},  # a key without its secret
    {**GOOD, "API_SECRET": ""},  # env("NEXMO_API_SECRET", default="") in a fresh project
    {**GOOD, "ACCOUNTS": {"two": {}}},
]


@pytest.mark.parametrize("configuration", MISSING_CREDENTIALS)
def test_missing_credentials_warn_at_check_and_fail_deploy_checks(
    settings: Any, configuration: dict[str, Any]
) -> None:
    replace_configuration(settings, configuration)
    (message,) = our_messages()
    assert (message.id, message.level) == (PREFIX + "W005", checks.WARNING)
    assert "NEXMO_CONVERSION" in message.msg
    assert message.hint
    assert deploy_ids() == [PREFIX + "E001", PREFIX + "W005"]
    (error,) = [m for m in deploy_messages() if m.level == checks.ERROR]
    assert (error.msg, error.hint) == (message.msg, message.hint)


def test_missing_credentials_still_stop_a_report_run(settings: Any) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from django_nexmo_conversion import report_pending

    replace_configuration(settings, {"BACKEND": GOOD["BACKEND"]})
    with pytest.raises(ImproperlyConfigured, match=r"NEXMO_CONVERSION\['API_KEY'\]"):
        report_pending()


def test_e001_no_credentials_at_all_names_the_settings(settings: Any) -> None:
    replace_configuration(settings, {"BACKEND": GOOD["BACKEND"]})
    (message,) = our_messages()
    assert "NEXMO_CONVERSION['API_KEY']" in message.msg
    assert "NEXMO_API_SECRET" in message.hint


def test_e001_gone_with_env_credentials(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    replace_configuration(settings, {"BACKEND": GOOD["BACKEND"]})
    monkeypatch.setenv("NEXMO_API_KEY", "k")
    monkeypatch.setenv("NEXMO_API_SECRET", "s")
    assert our_ids() == []


def test_non_string_unknown_key_is_a_warning_not_a_crash(settings: Any) -> None:
    replace_configuration(settings, {**GOOD, 1: "x"})
    assert our_ids() == [PREFIX + "W002"]


def test_w002_unknown_key_is_a_warning(settings: Any) -> None:
    replace_configuration(settings, {**GOOD, "API_SECRT": "oops", "TIMOUT": 3})
    (message,) = our_messages()
    assert message.id == PREFIX + "W002"
    assert message.level == checks.WARNING
    assert "API_SECRT" in message.msg
    assert "TIMOUT" in message.msg
    assert "oops" not in message.msg


def test_e007_message_names_backend(settings: Any) -> None:
    replace_configuration(settings, {**GOOD, "BACKEND": "no.such.module.Backend"})
    (message,) = our_messages()
    assert "NEXMO_CONVERSION['BACKEND']" in message.msg
    assert "no.such.module.Backend" in message.msg


@pytest.mark.parametrize(
    "url",
    [
        "https://api.nexmo.com",
        "https://example.com:8443/",
        "http://127.0.0.1:8000",
        "http://127.5.6.7",
        "http://[::1]:8000",
        "http://localhost:9000",
        "http://LOCALHOST",
    ],
)
def test_base_url_allowed(settings: Any, url: str) -> None:
    replace_configuration(settings, {**GOOD, "BASE_URL": url})
    assert our_ids() == []


@pytest.mark.parametrize(
    "url",
    [
        "http://api.nexmo.com",
        "http://10.0.0.1",
        "http://127.0.0.1.evil.test",
        "http://localhost.evil.test",
        "http://[::2]:8000",
        "ftp://api.nexmo.com",
        "api.nexmo.com",
        "",
    ],
)
def test_base_url_rejected(settings: Any, url: str) -> None:
    replace_configuration(settings, {**GOOD, "BASE_URL": url})
    assert our_ids() == [PREFIX + "E002"]
    assert "NEXMO_CONVERSION['BASE_URL']" in our_messages()[0].msg


def test_several_problems_are_all_reported(settings: Any) -> None:
    replace_configuration(settings, {**GOOD, "DISPATCH": "x", "BASE_URL": "http://a.test", "XX": 1})
    assert sorted(our_ids()) == [PREFIX + "E002", PREFIX + "E004", PREFIX + "W002"]


def test_checks_see_changes_without_the_cache() -> None:
    from django.conf import settings as django_settings

    cached = conf.get_settings()  # warm the cache with good settings
    with pytest.MonkeyPatch.context() as mp:
        # Changed behind Django's back (no setting_changed): the cache is now stale, and
        # the checks must not trust it.
        bad = {**django_settings.NEXMO_CONVERSION, "DISPATCH": "x"}
        mp.setattr(django_settings, "NEXMO_CONVERSION", bad)
        assert conf.get_settings() is cached
        assert [m.id for m in check_settings()] == [PREFIX + "E004"]


def test_w002_suggests_the_key_meant(settings: Any) -> None:
    replace_configuration(settings, {**GOOD, "API_SECRT": "oops", "timeout": 3, "COLOUR": 1})
    (message,) = our_messages()
    assert "API_SECRT (did you mean API_SECRET?)" in message.msg
    assert "timeout (did you mean TIMEOUT?)" in message.msg
    assert "COLOUR, " in message.msg  # nothing close: no suggestion
    assert "COLOUR (" not in message.msg


@pytest.mark.parametrize("method", ["SHA256", "Sha512", "MD5HASH", "md5"])
def test_e003_signature_method_in_any_case(settings: Any, method: str) -> None:
    replace_configuration(settings, {**GOOD, "SIGNATURE_SECRET": "x", "SIGNATURE_METHOD": method})
    assert our_ids() == []
    assert conf.build_settings(settings.NEXMO_CONVERSION).default_account.signature_method == (
        method.lower()
    )


def test_e003_names_the_key_it_is_in(settings: Any) -> None:
    two = {"API_SECRET": "s", "SIGNATURE_METHOD": "sha3"}
    replace_configuration(settings, {**GOOD, "ACCOUNTS": {"two": two}})
    (message,) = our_messages()
    assert message.id == PREFIX + "E003"
    assert "NEXMO_CONVERSION['ACCOUNTS']['two']['SIGNATURE_METHOD'] is 'sha3'" in message.msg
    replace_configuration(settings, {**GOOD, "SIGNATURE_METHOD": "sha3"})
    (message,) = our_messages()
    assert "NEXMO_CONVERSION['SIGNATURE_METHOD'] is 'sha3'" in message.msg


@pytest.mark.parametrize(
    "url",
    [
        "https://api.nexmo.com/conversions/sms",
        "https://api.nexmo.com/v1",
        "https://api.nexmo.com?x=1",
        "http://127.0.0.1:8787/conversions",
    ],
)
def test_w006_base_url_with_a_path(settings: Any, url: str) -> None:
    replace_configuration(settings, {**GOOD, "BASE_URL": url})
    (message,) = our_messages()
    assert (message.id, message.level) == (PREFIX + "W006", checks.WARNING)
    assert url in message.msg
    assert message.hint.startswith("Give the scheme and host only, e.g. http")
    assert "/conversions" not in message.hint


@pytest.mark.parametrize(
    ("dispatch", "modules"),
    [("celery", ["celery"]), ("django_tasks", ["django.tasks", "django_tasks"])],
)
def test_e018_dispatch_engine_not_importable(
    settings: Any, monkeypatch: pytest.MonkeyPatch, dispatch: str, modules: list[str]
) -> None:
    replace_configuration(settings, {**GOOD, "DISPATCH": dispatch})
    assert our_ids() == []  # the test venv has both engines
    # Hide the engines from the import system as a project without them would be. Only our
    # check runs then: Django 6's own checks import django.tasks.
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)
    (message,) = check_settings()
    assert (message.id, message.level) == (PREFIX + "E018", checks.ERROR)
    assert "NEXMO_CONVERSION['DISPATCH']" in message.msg
    assert modules[0] in message.msg
    assert "pip install" in message.hint


@pytest.mark.parametrize(
    ("configuration", "says"),
    [
        ({**GOOD, "BASE_URL": "http://127.0.0.1:8787"}, "on this machine"),
        ({**GOOD, "BASE_URL": "https://localhost"}, "on this machine"),
        ({**GOOD, "API_KEY": "sandbox-key"}, "sandbox's credentials"),
        ({**GOOD, "ACCOUNTS": {"x": {"API_SECRET": "sandbox-secret"}}}, "sandbox's credentials"),
    ],
)
def test_w007_sandbox_left_in_a_deploy(
    settings: Any, configuration: dict[str, Any], says: str
) -> None:
    replace_configuration(settings, configuration)
    assert our_ids() == []  # fine on a developer's machine
    (message,) = deploy_messages()
    assert (message.id, message.level) == (PREFIX + "W007", checks.WARNING)
    assert says in message.msg
    assert message.hint


def test_w006_never_shows_a_password_in_the_url(settings: Any) -> None:
    replace_configuration(settings, {**GOOD, "BASE_URL": "https://me:pw-Zr8@proxy.test/nexmo"})
    (message,) = our_messages()
    assert message.id == PREFIX + "W006"
    assert "pw-Zr8" not in message.msg + message.hint
    assert "https://proxy.test/nexmo" in message.msg
    assert message.hint.endswith("https://proxy.test.")


def test_a_good_deploy_has_no_deploy_messages(settings: Any) -> None:
    replace_configuration(settings, GOOD)
    assert deploy_ids() == []


def test_e000_has_a_hint(settings: Any) -> None:
    replace_configuration(settings, ["API_KEY"])
    (message,) = [m for m in our_messages() if m.id != PREFIX + "W005"]
    assert (message.id, message.level) == (PREFIX + "E000", checks.ERROR)
    assert "NEXMO_CONVERSION = {" in message.hint
