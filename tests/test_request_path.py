"""What mark_converted costs on the caller's request path (DISPATCH="manual")."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from django_nexmo_conversion import mark_converted
from django_nexmo_conversion.models import Conversion
from django_nexmo_conversion.testing.factories import SentMessageFactory

pytestmark = pytest.mark.django_db(transaction=True)


def statements(action) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        action()
    return [q["sql"] for q in captured.captured_queries]


def test_a_single_message_is_one_insert_in_autocommit():
    message = SentMessageFactory()
    sql = statements(lambda: mark_converted(message))
    # No count in the rollups here: the next sweep folds the new row in (insights.refresh), so no
    # request waits on a counter row every other request wants too.
    assert len(sql) == 1
    assert sql[0].upper().startswith("INSERT")
    assert "CONVERSIONSTAT" not in sql[0].upper()


def test_inside_a_transaction_only_a_savepoint_is_added():
    message = SentMessageFactory()

    # Counted inside the caller's transaction: its BEGIN and COMMIT are the caller's own.
    with transaction.atomic():
        sql = statements(lambda: mark_converted(message))
    # SAVEPOINT, INSERT, RELEASE: the savepoint keeps a concurrent duplicate mark from
    # aborting the caller's transaction.
    assert len(sql) == 3
    assert "INSERT" in sql[1].upper()
    assert "RELEASE" in sql[2].upper()
    assert Conversion.objects.filter(message=message).count() == 1


def test_a_part_made_by_the_factory_is_marked_with_its_send():
    head = SentMessageFactory()
    part = SentMessageFactory(parent=head)
    head.refresh_from_db()
    assert head.has_parts
    mark_converted(head)
    assert Conversion.objects.filter(message__in=[head, part]).count() == 2
