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


def test_a_single_message_is_an_insert_and_its_count_in_one_transaction_in_autocommit():
    message = SentMessageFactory()
    sql = [statement.upper() for statement in statements(lambda: mark_converted(message))]
    # The conversion and its count in the hourly rollups commit together (insights, the
    # dashboard): BEGIN, INSERT, one UPDATE ... SET converted = converted + 1, COMMIT.
    assert [statement.split()[0] for statement in sql] == ["BEGIN", "INSERT", "UPDATE", "COMMIT"]
    assert "CONVERSIONSTAT" in sql[2]


def test_inside_a_transaction_only_a_savepoint_is_added():
    message = SentMessageFactory()

    # Counted inside the caller's transaction: its BEGIN and COMMIT are the caller's own.
    with transaction.atomic():
        sql = statements(lambda: mark_converted(message))
    # SAVEPOINT, INSERT, the rollup's UPDATE, RELEASE: the savepoint keeps a concurrent
    # duplicate mark from aborting the caller's transaction, and undoes the pair together.
    assert len(sql) == 4
    assert "INSERT" in sql[1].upper()
    assert sql[2].upper().startswith("UPDATE")
    assert "RELEASE" in sql[3].upper()
    assert Conversion.objects.filter(message=message).count() == 1


def test_a_part_made_by_the_factory_is_marked_with_its_send():
    head = SentMessageFactory()
    part = SentMessageFactory(parent=head)
    head.refresh_from_db()
    assert head.has_parts
    mark_converted(head)
    assert Conversion.objects.filter(message__in=[head, part]).count() == 2
