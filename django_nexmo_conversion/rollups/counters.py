"""Counter rows: add to a row of counts named by its key, creating it if need be.

The aggregate tables (``ConversionStat``, ``StatusCount``) are rows of counts under a unique
key. Every change is an atomic ``UPDATE ... SET n = n + d``, so concurrent writers never lose
an increment; the first change of a key is one upsert (``INSERT ... ON CONFLICT DO UPDATE``,
``ON DUPLICATE KEY UPDATE`` on MySQL/MariaDB), so two writers creating the same row both end
up adding to it. The same code serves the sweeps' folds, receipts and deletions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import connections, models
from django.db.models import F

__all__ = ["add", "add_all", "lock_conflict", "locked", "take_write_lock", "tally"]

#: A key, frozen so it can be sorted and used in a dict: ((field, value), ...).
FrozenKey = tuple[tuple[str, Any], ...]


def add(
    model: type[models.Model],
    key: Mapping[str, Any],
    deltas: Mapping[str, int],
    *,
    counts: tuple[str, ...],
) -> None:
    """Add ``deltas`` to the counts of ``model``'s row ``key`` (``counts`` names every count
    column: a new row gets 0 in those ``deltas`` leaves out)."""
    changes = {name: delta for name, delta in deltas.items() if delta}
    if not changes:
        return
    rows = model._default_manager.filter(**key)
    if not rows.update(**{name: F(name) + delta for name, delta in changes.items()}):
        # The first change of this key: create the row and count in one statement. (An
        # INSERT IGNORE and then an UPDATE would leave InnoDB holding a shared lock on a row
        # a concurrent creator inserted, which the UPDATE must upgrade: two such writers
        # deadlock.)
        _upsert(model, key, changes, counts)


def add_all(
    model: type[models.Model],
    totals: Mapping[FrozenKey, Mapping[str, int]],
    *,
    counts: tuple[str, ...],
) -> None:
    """:func:`add` for many rows, in key order: two writers touching the same rows in one
    transaction each take their locks in the same order, so they cannot deadlock."""
    for key in sorted(totals):
        add(model, dict(key), totals[key], counts=counts)


def _column(model: type[models.Model], name: str) -> models.Field[Any, Any]:
    field = model._meta.get_field(name)
    assert isinstance(field, models.Field)  # counter tables have no relations
    return field


def _upsert(
    model: type[models.Model],
    key: Mapping[str, Any],
    changes: Mapping[str, int],
    counts: tuple[str, ...],
) -> None:
    connection = connections[model._default_manager.db]
    quote = connection.ops.quote_name

    def column(name: str) -> str:
        db_column = _column(model, name).column
        assert db_column is not None  # every counter field has a column
        return quote(db_column)

    table = quote(model._meta.db_table)
    # Every count column is given: the tables have no database defaults.
    totals = {name: changes.get(name, 0) for name in counts}
    names = [*key, *totals]
    values = [*key.values(), *totals.values()]
    params = [
        _column(model, name).get_db_prep_save(value, connection)
        for name, value in zip(names, values, strict=True)
    ]
    columns = ", ".join(column(name) for name in names)
    holes = ", ".join(["%s"] * len(names))
    changed = [column(name) for name in changes]
    if connection.vendor == "mysql":
        assign = ", ".join(f"{c} = {c} + %s" for c in changed)
        conflict = f"ON DUPLICATE KEY UPDATE {assign}"
    else:  # PostgreSQL, SQLite (3.24+)
        unique = ", ".join(column(name) for name in key)
        assign = ", ".join(f"{c} = {table}.{c} + %s" for c in changed)
        conflict = f"ON CONFLICT ({unique}) DO UPDATE SET {assign}"
    sql = f"INSERT INTO {table} ({columns}) VALUES ({holes}) {conflict}"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, *changes.values()])


# --- for the sweeps' folds -------------------------------------------------------------------


def take_write_lock(model: type[models.Model], column: str) -> None:
    """On SQLite, make the transaction a writer before it reads: a transaction that reads
    and then writes cannot wait for another connection's write lock and fails at once
    ("database is locked"). Other databases lock rows, not the file."""
    connection = connections[model._default_manager.db]
    if connection.vendor == "sqlite":
        table = connection.ops.quote_name(model._meta.db_table)
        name = connection.ops.quote_name(column)
        with connection.cursor() as cursor:
            cursor.execute(f"UPDATE {table} SET {name} = {name} WHERE 0")  # noqa: S608


def locked(rows: models.QuerySet[Any]) -> models.QuerySet[Any]:
    """``rows`` locked for this transaction; rows another transaction holds (a receipt, a
    claim, another sweep) are skipped and left for the next fold."""
    if connections[rows.db].features.has_select_for_update_skip_locked:
        return rows.select_for_update(skip_locked=True)
    return rows.select_for_update()  # SQLite: ignored; take_write_lock serialises


#: What the databases answer when two transactions wait for each other or a lock wait ends:
#: PostgreSQL's SQLSTATEs (deadlock, serialization failure, lock not available) and MySQL's
#: error numbers (deadlock, lock wait timeout).
_LOCK_CONFLICTS: frozenset[object] = frozenset({"40P01", "40001", "55P03", 1213, 1205})


def lock_conflict(exc: BaseException) -> bool:
    """Whether ``exc`` says a transaction lost a lock conflict (and was rolled back)."""
    cause = exc.__cause__
    sqlstate = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
    number = cause.args[0] if cause is not None and cause.args else None
    return sqlstate in _LOCK_CONFLICTS or number in _LOCK_CONFLICTS


def tally(
    totals: dict[FrozenKey, dict[str, int]], key: Mapping[str, Any], deltas: Mapping[str, int]
) -> None:
    """Add ``deltas`` to ``totals[key]`` in memory (a batch's changes, summed per row before
    :func:`add_all` writes them)."""
    counts = totals.setdefault(tuple(key.items()), {})
    for name, delta in deltas.items():
        counts[name] = counts.get(name, 0) + delta
