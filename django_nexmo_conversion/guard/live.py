"""The live check's evidence: three statements whatever the size of the tables.

1. the rules that match the number, one of its leading digits or its country;
2. one read of the counts: the tally rows of the prefix, its latest network, its country
   and the site in the rate window (``GuardTally``, at most a few hundred small rows), and
   the recent checks of the prefix, the country, the block of a hundred and the client
   (``GuardEvent``, the short windows only: the sweeps delete old checks);
3. one INSERT of this check (no row that another request updates: nothing waits).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import connections
from django.db.models import Q
from django.utils.crypto import salted_hmac

from .. import geography, privacy
from ..conf import get_settings
from ..conf.guard import GuardSettings
from ..exceptions import ConversionInputError
from ..models import GuardEvent, GuardRule, GuardTally
from ..rollups.guard import BUCKET_SECONDS
from ..validation import clean_recipient
from .decide import Counts, Evidence, Rule, Target

__all__ = [
    "client_key",
    "evidence",
    "keyed",
    "matching_rule",
    "record",
    "rules",
    "target_of",
]

_SALT = "django_nexmo_conversion.guard"
#: Longer than any number: a longer string is refused before it is parsed.
MAX_INPUT = 64


def keyed(kind: str, value: str) -> str:
    return salted_hmac(f"{_SALT}.{kind}", value, algorithm="sha256").hexdigest()[:32]


def client_key(client: object) -> str:
    """The keyed hash a requester is counted under ("" for none)."""
    if client is None or client == "":
        return ""
    return keyed("client", str(client)[:512])


def target_of(to: object, client: object, s: GuardSettings) -> tuple[Target, str]:
    """The destination of ``to`` and its digits; bad input raises ``ConversionInputError``."""
    if isinstance(to, str) and len(to) > MAX_INPUT:
        raise ConversionInputError(f"to is {len(to)} characters long: not a phone number.")
    digits = clean_recipient(to)
    if not digits:
        raise ConversionInputError("to is empty: the guard needs the number the send goes to.")
    region = get_settings().default_region
    target = Target(
        prefix=geography.prefix_of(digits, s.prefix_digits, region),
        country=geography.country_of(digits, region),
        number_hash=privacy.recipient_hash(digits)[:32],
        block_hash=keyed("block", digits[:-2]),
        client_hash=client_key(client),
    )
    return target, digits


def rules(now: datetime, digits: str, country: str) -> list[dict[str, Any]]:
    """The rules in force at ``now`` that may match (all of them when ``digits`` is "")."""
    rows = GuardRule.objects.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now)).filter(
        created_at__lte=now
    )
    if digits:
        leading = [digits[:n] for n in range(1, len(digits) + 1)]
        rows = rows.filter(
            Q(kind=GuardRule.Kind.NUMBER, value=privacy.recipient_hash(digits))
            | Q(kind=GuardRule.Kind.PREFIX, value__in=leading)
            | Q(kind=GuardRule.Kind.COUNTRY, value=country or "-")
        )
    return [dict(row) for row in rows.values("action", "kind", "value", "label", "note")]


def matching_rule(
    rows: list[dict[str, Any]], digits: str, country: str, prefix: str = ""
) -> Rule | None:
    """The rule that decides: the most specific (number, the longest prefix, country),
    ``allow`` winning a tie. Without ``digits``, prefix rules match ``prefix``'s digits."""
    number = privacy.recipient_hash(digits) if digits else None
    known = digits or prefix

    def depth(row: dict[str, Any]) -> int:
        if row["kind"] == "number":
            return 100 if number is not None and row["value"] == number else -1
        if row["kind"] == "prefix":
            return len(row["value"]) if known.startswith(row["value"]) else -1
        return 0 if country and row["value"] == country else -1

    ranked = sorted(
        (row for row in rows if depth(row) >= 0),
        key=lambda row: (-depth(row), row["action"] != "allow"),
    )
    if not ranked:
        return None
    best = ranked[0]
    return Rule(best["action"], best["kind"], best["label"] or best["value"], best["note"])


def _counts_sql(connection: Any) -> str:
    q = connection.ops.quote_name
    t, e = q(GuardTally._meta.db_table), q(GuardEvent._meta.db_table)
    kind, name, network, bucket = q("kind"), q("name"), q("network"), q("bucket")
    sent, converted, at = q("sent"), q("converted"), q("at")
    # One SELECT per tally row set, each an equality on (kind, name) and a range on bucket:
    # the unique index serves each, whatever the size of the table.
    tallies = " UNION ALL ".join(
        f"SELECT {kind}, {name}, "  # noqa: S608 (names quoted, values are parameters)
        f"SUM(CASE WHEN {bucket} <= %s THEN {sent} ELSE 0 END), "
        f"SUM(CASE WHEN {bucket} <= %s THEN {converted} ELSE 0 END), "
        f"SUM({sent}), SUM(CASE WHEN {bucket} > %s THEN {sent} ELSE 0 END), 0, 0 "
        f"FROM {t} WHERE {kind} = '{code}' AND {name} = {match} "
        f"AND {bucket} > %s AND {bucket} <= %s GROUP BY {kind}, {name}"
        for code, match in (
            ("p", "%s"),
            ("c", "%s"),
            ("*", "''"),
            (
                "n",
                f"(SELECT x.{network} FROM {t} x WHERE"  # noqa: S608
                f" x.{kind} = 'p' AND x.{name} = %s "
                f"AND x.{bucket} > %s AND x.{network} <> '' ORDER BY x.{bucket} DESC LIMIT 1)",
            ),
        )
    )
    return (
        f"{tallies} UNION ALL "  # noqa: S608 (names quoted, values are parameters)
        f"SELECT 'e', '', "
        f"COUNT(CASE WHEN {q('prefix')} = %s AND {at} > %s THEN 1 END), "
        f"COUNT(CASE WHEN {q('country')} = %s AND {at} > %s THEN 1 END), "
        f"COUNT(DISTINCT CASE WHEN {q('block_hash')} = %s AND {q('number_hash')} <> %s "
        f"AND {at} > %s THEN {q('number_hash')} END), "
        f"COUNT(DISTINCT CASE WHEN {q('client_hash')} = %s AND {q('number_hash')} <> %s "
        f"AND {at} > %s THEN {q('number_hash')} END), "
        f"COUNT(CASE WHEN {q('prefix')} = %s AND {q('action')} = 'allow' THEN 1 END), "
        f"COUNT(CASE WHEN {q('country')} = %s AND {q('action')} = 'allow' THEN 1 END) "
        f"FROM {e} WHERE {at} > %s AND {at} <= %s AND ({q('prefix')} = %s "
        f"OR {q('country')} = %s OR {q('block_hash')} = %s OR {q('client_hash')} = %s)"
    )


def evidence(target: Target, digits: str, now: datetime, s: GuardSettings) -> Evidence:
    """Statements 1 and 2."""
    rule = matching_rule(rules(now, digits, target.country), digits, target.country)
    connection = connections[GuardTally.objects.db]

    def at(seconds: float) -> Any:
        return connection.ops.adapt_datetimefield_value(now - timedelta(seconds=seconds))

    mature = at(s.conversion_wait + BUCKET_SECONDS)
    edges = [mature, mature, at(s.probe_interval + BUCKET_SECONDS)]
    client = target.client_hash or "-"
    window = [at(s.rate_window), at(0)]
    params = [
        *[*edges, target.prefix, *window],
        *[*edges, target.country, *window],
        *[*edges, *window],
        *[*edges, target.prefix, at(s.rate_window), *window],
        *[target.prefix, at(s.burst_window), target.country, at(s.burst_window)],
        *[target.block_hash, target.number_hash, at(s.sequential_window)],
        *[client, target.number_hash, at(s.client_window), target.prefix, target.country],
        *[at(s.longest_window), at(0), target.prefix, target.country, target.block_hash, client],
    ]
    with connection.cursor() as cursor:
        cursor.execute(_counts_sql(connection), params)
        rows = cursor.fetchall()
    found: dict[str, Counts] = {}
    network_code, events = "", (0, 0, 0, 0, 0, 0)
    for kind, name, *values in rows:
        a, b, c, d, e, f = (int(value or 0) for value in values)
        if kind == "e":
            events = (a, b, c, d, e, f)
            continue
        found[kind] = Counts(sent=a, converted=b, total=c, recent=d)
        if kind == "n":
            network_code = name
    return Evidence(
        prefix=found.get("p", Counts()),
        country=found.get("c", Counts()),
        network=found.get("n", Counts()),
        site=found.get("*", Counts()),
        network_code=network_code,
        prefix_recent=events[0],
        country_recent=events[1],
        block_others=events[2],
        client_others=events[3],
        prefix_allowed_recent=events[4],
        country_allowed_recent=events[5],
        rule=rule,
    )


def record(target: Target, now: datetime, action: str, reason: str) -> None:
    """Statement 3: this check, for the windows of the next ones."""
    GuardEvent.objects.create(
        at=now,
        prefix=target.prefix,
        country=target.country,
        number_hash=target.number_hash,
        block_hash=target.block_hash,
        client_hash=target.client_hash,
        action=action,
        reason=reason,
    )
