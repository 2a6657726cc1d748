"""The admin: what it lists and finds, the two actions and every permission case, the custom
URLs (POST, CSRF, permission), read-only pages, constant query counts, no secrets."""

from __future__ import annotations

import re
import zoneinfo
from datetime import datetime, timedelta

import pytest
from django.contrib import admin, messages
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_nexmo_conversion import marking
from django_nexmo_conversion.admin import EstimatedCountPaginator
from django_nexmo_conversion.admin.views import REPORT_NOW_LIMIT
from django_nexmo_conversion.backends.locmem import outbox
from django_nexmo_conversion.models import Conversion, ConversionAttempt, SentMessage, Status
from django_nexmo_conversion.testing.factories import (
    ConversionAttemptFactory,
    ConversionFactory,
    SentMessageFactory,
)
from tests.testapp.models import Order

from .helpers import configure, halted

pytestmark = pytest.mark.django_db

APP = "django_nexmo_conversion"
CL = f"/admin/{APP}/conversion/"
SM = f"/admin/{APP}/sentmessage/"
DASHBOARD = f"{CL}dashboard/"


# --- helpers ----------------------------------------------------------------------------------


@pytest.fixture
def make_staff(django_user_model):
    def make(*codenames: str, username: str = "staff"):
        user = django_user_model.objects.create_user(username, password="pw", is_staff=True)
        user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
        return user

    return make


def client_for(user, **kwargs) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def flash(response) -> list[tuple[int, str]]:
    return [(m.level, str(m)) for m in get_messages(response.wsgi_request)]


def act(client: Client, action: str, conversions, **extra):
    data = {
        "action": action,
        "_selected_action": [c.pk for c in conversions],
        "index": "0",
        **extra,
    }
    return client.post(CL, data)


def failed(**kwargs) -> Conversion:
    defaults = {
        "status": Status.FAILED,
        "attempt_count": 8,
        "next_attempt_at": None,
        "last_status_code": 503,
        "last_error": "HTTP 503: Service Unavailable (gave up after 8 attempts)",
    }
    return ConversionFactory(**{**defaults, **kwargs})


def state(conversion: Conversion) -> tuple:
    conversion.refresh_from_db()
    return (conversion.status, conversion.attempt_count, conversion.next_attempt_at)


# --- the change list --------------------------------------------------------------------------


def test_changelist_shows_status_badges_and_the_columns(admin_client):
    reported = ConversionFactory(
        status=Status.REPORTED, last_status_code=200, reported_at=timezone.now(), attempt_count=1
    )
    bad = failed(
        last_status_code=420,
        last_error="HTTP 420: Invalid Parameters — " + "x" * 200,
        message=SentMessageFactory(channel="voice"),
    )
    pending = ConversionFactory()
    sending = ConversionFactory(status=Status.SENDING)

    html = admin_client.get(CL).content.decode()

    for conversion in (reported, bad, pending, sending):
        assert conversion.message.message_id in html
        assert f"nexmo-badge--{conversion.status}" in html
    assert "Voice" in html
    assert "420" in html
    # The last error is cut in the list; the tooltip holds all of it.
    assert 'title="HTTP 420: Invalid Parameters — ' + "x" * 200 + '"' in html
    assert "x" * 200 + "</span>" not in html
    # No add page; the dashboard is one click away.
    assert f"{CL}add/" not in html
    assert f'href="{DASHBOARD}"' in html


def test_changelist_filters(admin_client):
    now = timezone.now()
    sms_failed = failed(last_status_code=420)
    voice_reported = ConversionFactory(
        status=Status.REPORTED,
        last_status_code=200,
        message=SentMessageFactory(channel="voice"),
    )
    undelivered = ConversionFactory(delivered=False, last_status_code=503)
    halted = ConversionFactory(last_status_code=401)
    throttled = ConversionFactory(last_status_code=429)
    wrong_url = ConversionFactory(last_status_code=404)
    untried = ConversionFactory(created_at=now - timedelta(days=40))
    everything = {sms_failed, voice_reported, undelivered, halted, throttled, wrong_url, untried}

    def listed(query: str, **params: str) -> set[Conversion]:
        html = admin_client.get(f"{CL}?{query}", params).content.decode()
        return {c for c in everything if c.message.message_id in html}

    assert listed("status__exact=failed") == {sms_failed}
    assert listed("message__channel__exact=voice") == {voice_reported}
    assert listed("delivered__exact=0") == {undelivered}
    assert listed("answer=ok") == {voice_reported}
    assert listed("answer=account") == {halted}
    assert listed("answer=endpoint") == {wrong_url}
    assert listed("answer=rejected") == {sms_failed}
    assert listed("answer=throttled") == {throttled}
    assert listed("answer=server") == {undelivered}
    assert listed("answer=none") == {untried}
    since = (now - timedelta(days=7)).isoformat()
    assert listed("", created_at__gte=since) == everything - {untried}
    assert listed("status__exact=failed&message__channel__exact=voice") == set()


def test_filters_need_no_queries_of_their_own(admin_client):
    """Every filter has fixed choices: none runs a DISTINCT over the table."""
    ConversionFactory()
    with CaptureQueriesContext(connection) as queries:
        admin_client.get(CL)
    assert not [q["sql"] for q in queries if "DISTINCT" in q["sql"].upper()]


def test_search_by_exact_message_id_in_any_case(admin_client):
    ConversionFactory(message=SentMessageFactory(message_id="0A00000012345678"))
    other = ConversionFactory()

    def found(term: str) -> bool:
        html = admin_client.get(CL, {"q": term}).content.decode()
        assert other.message.message_id not in html
        return "0A00000012345678</a>" in html

    assert found("0A00000012345678")
    assert found(" 0a00000012345678 ")
    assert not found("0A000000")  # exact only: a partial id would scan the whole table


def test_search_by_phone_number_in_any_format_even_when_not_stored(admin_client, settings):
    configure(settings, RECIPIENT_STORAGE="none")
    message = marking.record_message("0B00000000000001", recipient="+44 7700 900123")
    assert message.recipient == ""
    marking.mark_converted(message)
    marking.mark_converted(marking.record_message("0B00000000000002", recipient="447700900999"))

    for term in ("447700900123", "+44 7700 900123", "+44 (7700) 900-123"):
        for url in (CL, SM):
            html = admin_client.get(url, {"q": term}).content.decode()
            assert "0B00000000000001" in html, (url, term)
            assert "0B00000000000002" not in html, (url, term)


def test_only_indexed_columns_sort(admin_client):
    ConversionFactory()
    html = admin_client.get(CL).content.decode()
    sortable = set(re.findall(r'class="sortable column-(\w+)', html))
    assert sortable == {"reported_at"}


def _conversion_rows(count: int) -> None:
    orders = [Order.objects.create() for _ in range(3)]
    for index in range(count):
        message = SentMessageFactory(channel="voice" if index % 2 else "sms")
        if index % 3 == 0:
            message.target_content_type = ContentType.objects.get_for_model(Order)
            message.target_object_id = str(orders[index % 3].pk)
            message.save()
        conversion = ConversionFactory(
            message=message,
            status=[Status.PENDING, Status.FAILED, Status.REPORTED, Status.SENDING][index % 4],
            last_status_code=[None, 420, 200, 503][index % 4],
            last_error="HTTP 420: Invalid Parameters" if index % 4 == 1 else "",
        )
        ConversionAttemptFactory(conversion=conversion)


@pytest.mark.parametrize("url", [CL, SM])
def test_list_query_count_does_not_grow_with_the_rows(admin_client, monkeypatch, url):
    for model in (Conversion, SentMessage):
        monkeypatch.setattr(admin.site._registry[model], "list_per_page", 500)
    halted(401)  # the banner's queries run too

    def queries_for(rows: int) -> int:
        _conversion_rows(rows - Conversion.objects.count())
        with CaptureQueriesContext(connection) as queries:
            response = admin_client.get(url)
        assert response.status_code == 200
        assert response.content.decode().count('name="_selected_action"') == rows
        return len(queries)

    small, large = queries_for(10), queries_for(200)
    assert small == large
    assert large <= 8


def test_the_unfiltered_count_is_estimated_on_postgresql_only_when_large(monkeypatch):
    ConversionFactory.create_batch(30)
    queryset = Conversion.objects.order_by("-pk")
    monkeypatch.setattr(EstimatedCountPaginator, "ESTIMATE_ABOVE", 10)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {Conversion._meta.db_table}")
        with CaptureQueriesContext(connection) as queries:
            count = EstimatedCountPaginator(queryset, 10).count
        assert count == 30  # ANALYZE of a small table counts it exactly
        assert not [q for q in queries if "COUNT(" in q["sql"].upper()]
    else:
        with CaptureQueriesContext(connection) as queries:
            count = EstimatedCountPaginator(queryset, 10).count
        assert count == 30
        assert [q for q in queries if "COUNT(" in q["sql"].upper()]
    # A filtered list always counts exactly.
    assert EstimatedCountPaginator(queryset.filter(status=Status.FAILED), 10).count == 0


# --- Retry now --------------------------------------------------------------------------------


def test_retry_now_makes_failed_and_pending_due_with_a_fresh_budget(admin_client):
    now = timezone.now()
    gave_up = failed()
    waiting = ConversionFactory(attempt_count=3, next_attempt_at=now + timedelta(hours=2))
    reported = ConversionFactory(status=Status.REPORTED, attempt_count=1, next_attempt_at=None)

    response = act(admin_client, "retry_now", [gave_up, waiting, reported])

    assert response.status_code == 302
    status, attempts, due = state(gave_up)
    assert (status, attempts) == (Status.PENDING, 0)
    assert due <= timezone.now()
    status, attempts, due = state(waiting)
    assert (status, attempts) == (Status.PENDING, 3)  # a pending one keeps its count
    assert due <= timezone.now()
    assert state(reported) == (Status.REPORTED, 1, None)
    assert flash(response) == [
        (
            messages.SUCCESS,
            "2 conversions are due now. The next report run sends them; "
            "use Report now to send them at once.",
        ),
        (
            messages.WARNING,
            "1 conversion was left alone: it is already reported or being sent.",
        ),
    ]
    assert outbox == []  # retry only reschedules


def test_retry_now_on_a_filtered_list_counts_the_selection_before_it_changes(admin_client):
    gave_up = [failed() for _ in range(3)]
    response = admin_client.post(
        f"{CL}?status__exact=failed",
        {"action": "retry_now", "_selected_action": [c.pk for c in gave_up], "index": "0"},
    )
    assert flash(response) == [
        (
            messages.SUCCESS,
            "3 conversions are due now. The next report run sends them; "
            "use Report now to send them at once.",
        )
    ]
    assert {state(c)[0] for c in gave_up} == {Status.PENDING}


# --- Report now -------------------------------------------------------------------------------


def test_report_now_reports_the_selection_and_says_so(admin_client):
    gave_up = failed()
    waiting = ConversionFactory(next_attempt_at=timezone.now() + timedelta(hours=1))
    untouched = ConversionFactory()

    response = act(admin_client, "report_now", [gave_up, waiting])

    assert sorted(r.message_id for r in outbox) == sorted(
        [gave_up.message.message_id, waiting.message.message_id]
    )
    assert state(gave_up)[:2] == (Status.REPORTED, 1)
    assert state(waiting)[0] == Status.REPORTED
    assert state(untouched)[0] == Status.PENDING
    assert flash(response) == [(messages.SUCCESS, "Reported 2, will retry 0, failed 0.")]


@pytest.mark.sandbox
def test_report_now_over_real_http_says_which_failed(admin_client, nexmo_sandbox):
    rejected = ConversionFactory()
    flaky = ConversionFactory()
    fine = ConversionFactory()
    nexmo_sandbox.script(422, message_id=rejected.message.message_id)
    nexmo_sandbox.script(503, message_id=flaky.message.message_id)

    response = act(admin_client, "report_now", [rejected, flaky, fine])

    assert state(rejected)[0] == Status.FAILED
    assert state(flaky)[0] == Status.PENDING
    assert state(fine)[0] == Status.REPORTED
    [(level, text)] = flash(response)
    assert level == messages.WARNING
    assert text.startswith("Reported 1, will retry 1, failed 1.")


@pytest.mark.sandbox
@pytest.mark.parametrize(
    ("code", "fix"),
    [
        (401, "Check the credentials: NEXMO_CONVERSION['API_KEY'] and"),
        (402, "ask Vonage support to enable it"),
    ],
)
def test_report_now_halted_by_an_account_error_says_what_to_fix(
    admin_client, nexmo_sandbox, code, fix
):
    conversions = [ConversionFactory() for _ in range(3)]
    # Requests already in flight when the first refusal arrives get answers too: refuse all.
    nexmo_sandbox.script(code, code, code)

    response = act(admin_client, "report_now", conversions)

    [(level, text)] = flash(response)
    assert level == messages.ERROR
    assert text.startswith(f"Reporting stopped: Nexmo refused the account (HTTP {code}")
    assert fix in text
    assert "nothing is lost" in text
    # Nothing burned: every conversion is still pending, no attempt spent.
    for conversion in conversions:
        status, attempts, _due = state(conversion)
        assert (status, attempts) == (Status.PENDING, 0)


def test_report_now_refuses_more_than_its_limit(admin_client):
    ConversionFactory.create_batch(REPORT_NOW_LIMIT + 1, next_attempt_at=None)
    selection = list(Conversion.objects.all())

    response = act(admin_client, "report_now", selection)

    [(level, text)] = flash(response)
    assert level == messages.ERROR
    assert f"at most {REPORT_NOW_LIMIT} conversions" in text
    assert outbox == []
    assert not Conversion.objects.exclude(next_attempt_at=None).exists()  # nothing rescheduled


def test_report_now_with_nothing_to_report(admin_client):
    reported = ConversionFactory(status=Status.REPORTED)
    response = act(admin_client, "report_now", [reported])
    assert flash(response) == [
        (
            messages.WARNING,
            "Nothing to report: the selected conversions are already reported or being sent.",
        )
    ]
    assert outbox == []


def test_report_now_with_broken_settings_names_the_setting(admin_client, settings):
    configure(settings, BASE_URL="http://example.com")
    conversion = ConversionFactory()
    response = act(admin_client, "report_now", [conversion])
    [(level, text)] = flash(response)
    assert level == messages.ERROR
    assert text.startswith("Nothing was sent:")
    assert "BASE_URL" in text
    assert outbox == []


# --- permissions ------------------------------------------------------------------------------


def test_view_only_staff_sees_no_action_and_gets_403_posting_one(make_staff):
    viewer = client_for(make_staff("view_conversion"))
    gave_up = failed()
    before = state(gave_up)

    page = viewer.get(CL)
    assert page.status_code == 200
    html = page.content.decode()
    assert gave_up.message.message_id in html
    assert 'name="action"' not in html
    assert "retry_now" not in html
    assert "report_now" not in html

    # Django itself would answer "No action selected." with a 200; we refuse outright.
    for action in ("retry_now", "report_now", "delete_selected"):
        response = act(viewer, action, [gave_up])
        assert response.status_code == 403, action
        assert state(gave_up) == before
    assert outbox == []
    assert Conversion.objects.filter(pk=gave_up.pk).exists()


def test_the_change_permission_allows_both_actions(make_staff):
    changer = client_for(make_staff("change_conversion"))
    gave_up = failed()
    html = changer.get(CL).content.decode()
    assert '<option value="retry_now">Retry now</option>' in html
    assert '<option value="report_now">Report now</option>' in html
    assert "delete_selected" not in html

    response = act(changer, "retry_now", [gave_up])
    assert response.status_code == 302
    assert state(gave_up)[:2] == (Status.PENDING, 0)


def test_delete_permission_alone_does_not_allow_retry(make_staff):
    deleter = client_for(make_staff("view_conversion", "delete_conversion"))
    gave_up = failed()
    html = deleter.get(CL).content.decode()
    assert "delete_selected" in html
    assert "retry_now" not in html
    assert act(deleter, "retry_now", [gave_up]).status_code == 403
    assert state(gave_up)[0] == Status.FAILED


def test_anonymous_and_non_staff_are_sent_to_login(django_user_model):
    gave_up = failed()
    user = django_user_model.objects.create_user("someone", password="pw")
    for client in (Client(), client_for(user)):
        for response in (
            act(client, "retry_now", [gave_up]),
            client.post(f"{CL}{gave_up.pk}/retry/"),
            client.post(f"{CL}{gave_up.pk}/report/"),
            client.get(DASHBOARD),
        ):
            assert response.status_code == 302
            assert response["Location"].startswith("/admin/login/")
    assert state(gave_up)[0] == Status.FAILED


def test_staff_without_conversion_permissions_get_403(make_staff):
    nobody = client_for(make_staff())
    gave_up = failed()
    assert nobody.get(CL).status_code == 403
    assert nobody.get(DASHBOARD).status_code == 403
    assert nobody.get(f"/admin/{APP}/conversiondashboard/").status_code == 403
    assert nobody.post(f"{CL}{gave_up.pk}/retry/").status_code == 403
    assert state(gave_up)[0] == Status.FAILED


# --- the change page's buttons (custom URLs) --------------------------------------------------


def test_change_page_buttons_post_and_come_back(admin_client):
    gave_up = failed()
    page = admin_client.get(f"{CL}{gave_up.pk}/change/").content.decode()
    assert f'action="{CL}{gave_up.pk}/retry/"' in page
    assert f'action="{CL}{gave_up.pk}/report/"' in page
    assert "csrfmiddlewaretoken" in page

    response = admin_client.post(f"{CL}{gave_up.pk}/retry/")
    assert response.status_code == 302
    assert response["Location"] == f"{CL}{gave_up.pk}/change/"
    assert state(gave_up)[:2] == (Status.PENDING, 0)
    assert outbox == []

    response = admin_client.post(f"{CL}{gave_up.pk}/report/")
    assert response.status_code == 302
    assert state(gave_up)[0] == Status.REPORTED
    assert [r.message_id for r in outbox] == [gave_up.message.message_id]
    assert flash(response)[-1] == (messages.SUCCESS, "Reported 1, will retry 0, failed 0.")


def test_change_page_buttons_only_where_they_make_sense(admin_client, make_staff):
    reported = ConversionFactory(status=Status.REPORTED)
    gave_up = failed()
    assert "/retry/" not in admin_client.get(f"{CL}{reported.pk}/change/").content.decode()
    ConversionAttemptFactory(conversion=gave_up, error="HTTP 503: seen by viewers")
    viewer = client_for(make_staff("view_conversion"))
    page = viewer.get(f"{CL}{gave_up.pk}/change/")
    assert page.status_code == 200
    assert "/retry/" not in page.content.decode()
    # The attempts need no permission of their own.
    assert "HTTP 503: seen by viewers" in page.content.decode()


def test_custom_urls_want_post_csrf_and_permission(admin_user, make_staff):
    gave_up = failed()
    before = state(gave_up)
    for name in ("retry", "report"):
        url = f"{CL}{gave_up.pk}/{name}/"
        assert client_for(admin_user).get(url).status_code == 405
        strict = client_for(admin_user, enforce_csrf_checks=True)
        assert strict.post(url).status_code == 403
        viewer = client_for(make_staff("view_conversion", username=f"viewer-{name}"))
        assert viewer.post(url).status_code == 403
        assert state(gave_up) == before
    assert client_for(admin_user).post(f"{CL}999999/retry/").status_code == 404
    assert outbox == []


# --- read-only pages --------------------------------------------------------------------------


def test_change_page_is_read_only_and_lists_the_attempts(admin_client):
    gave_up = failed(attempt_count=2)
    start = timezone.now() - timedelta(minutes=5)
    for n in range(2):
        ConversionAttemptFactory(
            conversion=gave_up,
            started_at=start + timedelta(minutes=n),
            duration=timedelta(milliseconds=125),
            http_status=503,
            outcome="transient",
            error=f"HTTP 503: try {n}",
        )
    html = admin_client.get(f"{CL}{gave_up.pk}/change/").content.decode()
    assert 'name="_save"' not in html
    assert 'name="status"' not in html
    assert "<select" not in html.split('id="conversion_form"')[1]
    assert html.count("125 ms") == 2
    assert "HTTP 503: try 0" in html
    assert "HTTP 503: try 1" in html
    assert "gave up after 8 attempts" in html
    assert "nexmo-badge--failed" in html
    assert f'href="{SM}{gave_up.message.pk}/change/"' in html


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("en-us", "May 4, 2026, 14:03:07"),
        ("de", "4. Mai 2026, 14:03:07"),
        ("fr", "4 mai 2026, 14:03:07"),
    ],
)
def test_attempt_times_follow_the_active_language(admin_client, language, expected):
    from django.utils import translation

    conversion = failed(attempt_count=1)
    paris = datetime(2026, 5, 4, 14, 3, 7, tzinfo=zoneinfo.ZoneInfo("Europe/Paris"))
    ConversionAttemptFactory(conversion=conversion, started_at=paris, http_status=503)
    with translation.override(language):
        html = admin_client.get(f"{CL}{conversion.pk}/change/").content.decode()
    assert expected in html


def test_posting_a_change_form_or_adding_is_refused(admin_client):
    reported = ConversionFactory(status=Status.REPORTED, attempt_count=1)
    response = admin_client.post(
        f"{CL}{reported.pk}/change/", {"status": "pending", "attempt_count": "0"}
    )
    assert response.status_code == 403
    assert state(reported)[:2] == (Status.REPORTED, 1)
    assert admin_client.get(f"{CL}add/").status_code == 403
    assert admin_client.get(f"{SM}add/").status_code == 403
    message = reported.message
    response = admin_client.post(f"{SM}{message.pk}/change/", {"recipient": "123"})
    assert response.status_code == 403


# --- sent messages ----------------------------------------------------------------------------


def test_sent_message_list_links_conversion_and_target(admin_client, django_user_model):
    user = django_user_model.objects.create_user("target-user")
    order = Order.objects.create()
    with_admin = marking.record_message(
        "0C00000000000001", recipient="447700900001", target=user, api_key="key-2fa"
    )
    without_admin = marking.record_message("0C00000000000002", target=order)
    plain = marking.record_message("0C00000000000003")
    conversion = marking.mark_converted(with_admin)

    html = admin_client.get(SM).content.decode()

    assert "key-2fa" in html
    assert "447700900001" in html
    assert f'href="{CL}{conversion.pk}/change/"' in html
    assert "nexmo-badge--pending" in html
    assert f'href="/admin/auth/user/{user.pk}/change/">user #{user.pk}</a>' in html
    assert f"order #{order.pk}" in html  # no admin for it: plain text
    assert without_admin.message_id in html
    assert plain.message_id in html


# --- dashboard entry --------------------------------------------------------------------------


def test_admin_index_links_the_dashboard_for_viewers_only(admin_client, make_staff):
    entry = f'href="/admin/{APP}/conversiondashboard/"'
    assert entry in admin_client.get("/admin/").content.decode()
    viewer = client_for(make_staff("view_conversion"))
    assert entry in viewer.get("/admin/").content.decode()
    response = viewer.get(f"/admin/{APP}/conversiondashboard/")
    assert response.status_code == 302
    assert response["Location"] == DASHBOARD
    other = client_for(make_staff("view_sentmessage", username="other"))
    assert entry not in other.get("/admin/").content.decode()


# --- secrets ----------------------------------------------------------------------------------

SECRET = "s3cr3t-Never-Shown-7731"
SIGNING_SECRET = "sig-s3cr3t-Never-Shown-9902"


@pytest.mark.sandbox
def test_no_admin_page_shows_a_secret(admin_client, nexmo_sandbox, settings):
    conversion = ConversionFactory()
    failed(last_error="HTTP 420: Invalid Parameters")
    # Wrong credentials on purpose: the sandbox answers 401, recorded everywhere it can be.
    configure(settings, API_SECRET=SECRET)
    response = act(admin_client, "report_now", [conversion])
    texts = [text for _level, text in flash(response)]
    configure(settings, SIGNATURE_SECRET=SIGNING_SECRET, SIGNATURE_METHOD="sha256")
    nexmo_sandbox.script(401)
    response = admin_client.post(f"{CL}{conversion.pk}/report/")
    texts += [text for _level, text in flash(response)]
    assert ConversionAttempt.objects.filter(http_status=401).count() == 2

    pages = [
        CL,
        f"{CL}{conversion.pk}/change/",
        DASHBOARD,
        SM,
        f"{SM}{conversion.message.pk}/change/",
        "/admin/",
    ]
    for url in pages:
        html = admin_client.get(url).content.decode()
        assert SECRET not in html, url
        assert SIGNING_SECRET not in html, url
    assert "Reporting is stopped" in admin_client.get(DASHBOARD).content.decode()
    for text in texts:
        assert SECRET not in text
        assert SIGNING_SECRET not in text


def test_inbound_messages_are_listed_read_only(admin_client):
    from django_nexmo_conversion.models import InboundMessage, ReplyOutcome

    sent = SentMessageFactory(message_id="REPLIEDTO0001")
    InboundMessage.objects.create(
        message_id="INBOUND0001",
        replied_at=timezone.now(),
        matched=sent,
        outcome=ReplyOutcome.CONVERTED,
    )
    InboundMessage.objects.create(
        message_id="INBOUND0002", replied_at=timezone.now(), outcome=ReplyOutcome.UNMATCHED
    )
    changelist = admin_client.get("/admin/django_nexmo_conversion/inboundmessage/")
    assert changelist.status_code == 200
    page = changelist.content.decode()
    for shown in ("INBOUND0001", "INBOUND0002", "REPLIEDTO0001"):
        assert shown in page
    filtered = admin_client.get(
        "/admin/django_nexmo_conversion/inboundmessage/", {"outcome": "unmatched"}
    )
    assert "INBOUND0002" in filtered.content.decode()
    assert "INBOUND0001" not in filtered.content.decode()
    # No add page, and the change page has no form to save.
    assert admin_client.get("/admin/django_nexmo_conversion/inboundmessage/add/").status_code == 403
    pk = InboundMessage.objects.get(message_id="INBOUND0001").pk
    change = admin_client.post(f"/admin/django_nexmo_conversion/inboundmessage/{pk}/change/", {})
    assert change.status_code == 403
