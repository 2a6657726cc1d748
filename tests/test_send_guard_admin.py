"""The admin's "Send guard" page: refused destinations, rules added and expired by POST with
Django's permissions; a number rule never stores the number."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from django_nexmo_conversion import guard
from django_nexmo_conversion.models import GuardRule
from django_nexmo_conversion.privacy import recipient_hash

from .helpers import configure

pytestmark = pytest.mark.django_db

PAGE = "admin:django_nexmo_conversion_guardrule_changelist"
ADD = "admin:django_nexmo_conversion_guardrule_add"


def test_the_page_lists_the_destinations_refused_and_the_rules(
    admin_client: Any, settings: Any
) -> None:
    configure(settings, GUARD={"MODE": "enforce"})
    GuardRule.objects.create(action="block", kind="prefix", value="4477123", label="4477123")
    guard.check("447712312345")
    page = admin_client.get(reverse(PAGE)).content.decode()
    assert "Send guard" in page
    assert "+4477123" in page
    assert "<code>rule</code>" in page
    assert "447712312345" not in page


def test_a_number_rule_added_by_post_keeps_only_the_numbers_hash(admin_client: Any) -> None:
    answer = admin_client.post(
        reverse(ADD),
        {"action": "allow", "kind": "number", "destination": "+44 7712 312345", "note": "QA"},
    )
    assert answer.status_code == 302
    rule = GuardRule.objects.get()
    assert rule.value == recipient_hash("447712312345")
    assert "312345" not in rule.label
    assert rule.created_by == "admin"


def test_a_bad_destination_is_refused_with_a_message(admin_client: Any) -> None:
    answer = admin_client.post(
        reverse(ADD), {"action": "block", "kind": "country", "destination": "Nigeria"}
    )
    assert answer.status_code == 200
    assert "two-letter country code" in answer.content.decode()
    assert not GuardRule.objects.exists()


def test_rules_are_expired_by_a_post_action(admin_client: Any, settings: Any) -> None:
    configure(settings, GUARD={"MODE": "enforce"})
    rule = GuardRule.objects.create(action="block", kind="country", value="GB", label="GB")
    assert not guard.check("447712312345").allowed
    answer = admin_client.post(
        reverse(PAGE), {"action": "expire_now", "_selected_action": [rule.pk]}
    )
    assert answer.status_code == 302
    assert guard.check("447712312345").allowed


def test_adding_a_rule_takes_the_add_permission(client: Any) -> None:
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_guardrule"))
    client.force_login(user)
    assert client.get(reverse(PAGE)).status_code == 200
    answer = client.post(reverse(ADD), {"action": "block", "kind": "country", "destination": "NG"})
    assert answer.status_code == 403
    assert not GuardRule.objects.exists()


@pytest.mark.parametrize("page", ["dashboard", "insights"])
def test_the_dashboard_and_insights_link_the_page_for_who_may_view_it(
    client: Any, page: str
) -> None:
    url = reverse(f"admin:django_nexmo_conversion_conversion_{page}")
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_conversion"))
    client.force_login(user)
    assert 'id="nexmo-guard-link"' not in client.get(url).content.decode()

    user.user_permissions.add(Permission.objects.get(codename="view_guardrule"))
    user = User.objects.get(pk=user.pk)  # permissions are cached on the instance
    client.force_login(user)
    html = client.get(url).content.decode()
    assert f'href="{reverse(PAGE)}" id="nexmo-guard-link"' in html
