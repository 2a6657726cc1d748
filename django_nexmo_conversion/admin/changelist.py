"""What keeps the change lists fast on tables of millions of rows: a count that may be
estimated, and a search the indexes can serve."""

from __future__ import annotations

import re
from functools import cached_property
from typing import TYPE_CHECKING, Any

from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Q, QuerySet
from django.utils.translation import gettext_lazy as _

from ..privacy import recipient_hash

# Django's paginator is generic only in the type stubs, not at run time.
if TYPE_CHECKING:
    PaginatorBase = Paginator[Any]
else:
    PaginatorBase = Paginator

#: The search box's help text on the lists that search with :func:`search_lookups`.
SEARCH_HELP_TEXT = _(
    "An exact message id, or a recipient's phone number in international format "
    "(spaces, dashes, brackets and a leading + are ignored)."
)
_PHONE_LIKE = re.compile(r"\+?[0-9][0-9\s().-]{4,}")


class EstimatedCountPaginator(PaginatorBase):
    """Counts exactly, except an *unfiltered* list on PostgreSQL over :attr:`ESTIMATE_ABOVE`
    rows, which takes the planner's estimate (``pg_class.reltuples``, kept fresh by
    autovacuum): ``COUNT(*)`` of a whole table of millions of rows reads all of it.
    Filtered lists count exactly, through the filter's index.
    """

    ESTIMATE_ABOVE = 10_000

    @cached_property
    def count(self) -> int:
        object_list = self.object_list
        if isinstance(object_list, QuerySet) and not object_list.query.where:
            estimate = self._estimate(object_list)
            if estimate is not None and estimate > self.ESTIMATE_ABOVE:
                return estimate
        return super().count

    @staticmethod
    def _estimate(queryset: QuerySet[Any]) -> int | None:
        connection = connections[queryset.db]
        if connection.vendor != "postgresql":
            return None
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
                [connection.ops.quote_name(queryset.model._meta.db_table)],
            )
            row = cursor.fetchone()
        # -1 until the table was first analysed.
        return int(row[0]) if row and row[0] is not None and row[0] >= 0 else None


def search_lookups(term: str, prefix: str = "") -> Q | None:
    """A search the indexes can serve: a message id (exact, as typed or upper/lower case) or
    a phone number in any format (through the recipient's keyed hash, so it works whatever
    ``RECIPIENT_STORAGE`` keeps). ``icontains`` over millions of rows would scan them all."""
    term = term.strip()
    if not term:
        return None
    query = Q(**{f"{prefix}message_id__in": sorted({term, term.upper(), term.lower()})})
    if _PHONE_LIKE.fullmatch(term):
        query |= Q(**{f"{prefix}recipient_hash": recipient_hash(term)})
    return query
