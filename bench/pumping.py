"""SMS pumping: a simulated day of traffic with attacks mixed in, judged three ways in one run.

The traffic (seeded, the same for the three):

- legitimate: five countries (GB, FR, US, NG, IN) with 55-90 % conversion, a daily curve,
  a realistic delay to convert (most within a minute, a tail up to half an hour), users
  asking again for their own number now and then; a marketing surge to FR at 5x its volume
  (10:00-12:00, normal conversion); one GB network whose delivery fails for 30 minutes
  (14:00-14:30: its sends do not convert);
- attacks (nothing converts): ``sequential`` walks through consecutive numbers of a GB
  prefix that also has legitimate traffic (one a second, 50 rotating IP addresses);
  ``slow`` sends three a minute to random numbers of an NG prefix for three hours (a
  thousand IP addresses); ``new_country`` bursts 500 sends in ten minutes to Latvia, where
  the site never sent (random prefixes and addresses).

The three ways: (a) no guard; (b) block a whole country for the rest of the day once the
existing low-conversion alert fires for it (``ALERT_MIN_RATE`` 0.1 on ``ALERT_MIN_MESSAGES``
100 in the last ``ALERT_WINDOW`` hour, evaluated at every five-minute sweep); (c) the send
guard in ``enforce`` with its default settings: the real ``guard.check`` on the database,
with the messages it lets through recorded, their conversions marked when they happen and a
sweep (``rollups.fold``) every 30 simulated seconds. The day before is loaded as history
(legitimate traffic only), as a site switching the guard on would have.

Targets: at most 30 attack sends let through per attacked prefix; at most 0.1 % of
legitimate sends refused; the surge and the failing network never refused; better than (b)
on both counts. Prices per message are illustrative.

    .venv/bin/python bench/pumping.py [--quick] [--db sqlite|postgres] [--json PATH]
"""

from __future__ import annotations

import heapq
import math
import random
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common
from bench.common import Figure

DAY = 86400
#: country: (calling code, national pattern before the prefix digits, sends a day,
#: conversion rate, price, networks, total digits)
COUNTRIES: dict[str, tuple[str, str, int, float, float, tuple[str, ...], int]] = {
    "GB": ("44", "7", 8000, 0.75, 0.04, ("23410", "23415", "23420"), 12),
    "FR": ("33", "6", 4000, 0.65, 0.07, ("20801", "20810"), 11),
    "US": ("1", "2", 3000, 0.90, 0.008, ("310260", "311480"), 11),
    "NG": ("234", "80", 1500, 0.55, 0.25, ("62120", "62130"), 13),
    "IN": ("91", "9", 3500, 0.60, 0.005, ("40410", "40445"), 12),
}
PRICE_LV = 0.09
PREFIXES_PER_COUNTRY = 120
SURGE = ("FR", 10 * 3600, 12 * 3600, 5.0)
FAILING = ("23415", 14 * 3600, 14 * 3600 + 1800)


@dataclass
class Request:
    at: float  # seconds into the day
    number: str
    country: str
    prefix: str
    network: str
    client: str
    kind: str  # "legit" or the attack's name
    converts_after: float | None  # seconds, None: never
    price: float
    surge: bool = False
    failing: bool = False


def curve(second: float) -> float:
    """The daily curve: quiet at night, busy in the evening (mean 1)."""
    hour = second / 3600
    return 1 + 0.7 * math.sin((hour - 9) / 24 * 2 * math.pi)


def prefixes(rng: random.Random) -> dict[str, list[tuple[str, str]]]:
    """Per country, (prefix digits after the calling code, network) pairs of valid numbers."""
    from django_nexmo_conversion.geography import country_of

    found: dict[str, list[tuple[str, str]]] = {}
    for country, (code, lead, _n, _r, _p, networks, length) in COUNTRIES.items():
        chosen: list[tuple[str, str]] = []
        for _attempt in range(100_000):
            if len(chosen) == PREFIXES_PER_COUNTRY:
                break
            body = lead + "".join(rng.choice("0123456789") for _ in range(5 - len(lead)))
            sample = f"{code}{body}".ljust(length, "3")
            if country_of(sample) == country and body not in {b for b, _ in chosen}:
                chosen.append((body, rng.choice(networks)))
        found[country] = chosen
    return found


def number_in(code: str, body: str, length: int, rng: random.Random) -> str:
    rest = length - len(code) - len(body)
    return f"{code}{body}{rng.randrange(10**rest):0{rest}d}"


def delay(rng: random.Random) -> float:
    """Seconds to convert: most within a minute, a tail to half an hour."""
    if rng.random() < 0.9:
        return min(600.0, rng.lognormvariate(math.log(35), 0.6))
    return rng.uniform(120, 1800)


def legit_day(
    rng: random.Random, table: dict[str, list[tuple[str, str]]], *, scale: float, surge: bool
) -> list[Request]:
    requests: list[Request] = []
    n = 0
    for country, (code, _lead, per_day, rate, price, _nets, length) in COUNTRIES.items():
        minute_mean = per_day * scale / 1440
        for minute in range(1440):
            at0 = minute * 60
            factor = curve(at0)
            in_surge = surge and country == SURGE[0] and SURGE[1] <= at0 < SURGE[2]
            if in_surge:
                factor *= SURGE[3]
            for _ in range(_poisson(rng, minute_mean * factor)):
                at = at0 + rng.random() * 60
                body, network = rng.choice(table[country])
                failing = surge and network == FAILING[0] and FAILING[1] <= at < FAILING[2]
                converts = not failing and rng.random() < rate
                n += 1
                request = Request(
                    at,
                    number_in(code, body, length, rng),
                    country,
                    code + body,
                    network,
                    f"user{n}",
                    "legit",
                    delay(rng) if converts else None,
                    price,
                    surge=in_surge,
                    failing=failing,
                )
                requests.append(request)
                if rng.random() < 0.03:  # the user asks again for a code a minute later
                    again = Request(**{**request.__dict__, "at": at + rng.uniform(30, 120)})
                    requests.append(again)
    return requests


def _poisson(rng: random.Random, mean: float) -> int:
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def attacks(rng: random.Random, table: dict[str, list[tuple[str, str]]]) -> list[Request]:
    out: list[Request] = []
    # 1. A walk through consecutive numbers of a GB prefix with legitimate traffic.
    body, network = table["GB"][0]
    start = rng.randrange(10**4) * 10
    for i in range(300):
        number = f"44{body}{start + i:05d}"
        out.append(
            Request(
                9 * 3600 + i,
                number,
                "GB",
                "44" + body,
                network,
                f"10.1.0.{i % 50}",
                "sequential",
                None,
                0.04,
            )
        )
    # 2. Three a minute to random numbers of an NG prefix, for three hours.
    body, network = table["NG"][1]
    for i in range(540):
        number = number_in("234", body, 13, rng)
        out.append(
            Request(
                13 * 3600 + i * 20 + rng.random() * 5,
                number,
                "NG",
                "234" + body,
                network,
                f"10.2.{rng.randrange(4)}.{rng.randrange(250)}",
                "slow",
                None,
                0.25,
            )
        )
    # 3. 500 sends in ten minutes to Latvia (never sent to before).
    for i in range(500):
        body = f"2{rng.randrange(10):d}{rng.randrange(100):02d}0"[:5]
        number = f"371{body}{rng.randrange(1000):03d}"
        out.append(
            Request(
                16 * 3600 + i * 1.2,
                number,
                "LV",
                "371" + body,
                "24701",
                f"10.3.{rng.randrange(8)}.{rng.randrange(250)}",
                "new_country",
                None,
                PRICE_LV,
            )
        )
    return out


# --- the three ways ----------------------------------------------------------------------------


def no_guard(requests: list[Request]) -> list[bool]:
    return [True] * len(requests)


def country_block(requests: list[Request], alert: tuple[float, int, float]) -> list[bool]:
    """(b): a country is blocked for the rest of the day once its conversion rate over the
    last window, seen at a five-minute sweep, is under the alert's rate on enough sends."""
    window, minimum, rate = alert
    sent: list[tuple[float, str, float | None]] = []  # (at, country, converted at)
    blocked: set[str] = set()
    decisions = []
    next_sweep = 300.0
    for request in requests:
        while request.at >= next_sweep:
            per: dict[str, list[int]] = defaultdict(lambda: [0, 0])
            for at, country, converted in sent:
                if next_sweep - window <= at:
                    per[country][0] += 1
                    per[country][1] += converted is not None and converted <= next_sweep
            for country, (n, c) in per.items():
                if n >= minimum and c / n < rate:
                    blocked.add(country)
            sent = [s for s in sent if s[0] >= next_sweep - window]
            next_sweep += 300
        ok = request.country not in blocked
        decisions.append(ok)
        if ok:
            done = None if request.converts_after is None else request.at + request.converts_after
            sent.append((request.at, request.country, done))
    return decisions


def with_guard(requests: list[Request], history: list[Request], day0: datetime) -> list[bool]:
    """(c): the real guard on the database, the day before loaded as recorded history."""
    from django.db import connection

    from django_nexmo_conversion import guard, mark_converted, record_message
    from django_nexmo_conversion.models import Conversion, GuardEvent, GuardTally, SentMessage
    from django_nexmo_conversion.rollups import fold

    if connection.vendor == "sqlite":
        # Decisions are measured here, not time: no fsync per write.
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA synchronous = OFF")
    common.reset()
    GuardEvent.objects.all().delete()
    GuardTally.objects.all().delete()
    _load_history(history, day0 - timedelta(days=1))
    fold(batch_size=5000)
    if connection.vendor == "postgresql":
        common.analyze()

    def moment(second: float) -> datetime:
        return day0 + timedelta(seconds=second)

    pending: list[tuple[float, int, int]] = []  # (converts at, tie, message pk)
    decisions = []
    next_fold = 30.0
    for n, request in enumerate(requests):
        while pending and pending[0][0] <= request.at:
            at, _tie, pk = heapq.heappop(pending)
            mark_converted(SentMessage(pk=pk, sent_at=moment(0)), timestamp=moment(at))
        if request.at >= next_fold:
            fold()
            next_fold = request.at - request.at % 30 + 30
        decision = guard.check(request.number, client=request.client, now=moment(request.at))
        decisions.append(decision.allowed)
        if not decision.allowed and request.kind == "legit":
            print(f"  legitimate send refused at {request.at / 3600:.2f} h: {decision}")
        if decision.allowed:
            message = record_message(
                f"S{n:09d}", recipient=request.number, sent_at=moment(request.at)
            )
            SentMessage.objects.filter(pk=message.pk).update(network=request.network)
            if request.converts_after is not None:
                at = request.at + request.converts_after
                heapq.heappush(pending, (at, n, message.pk))
    assert Conversion.objects.exists()
    return decisions


def _load_history(history: list[Request], start: datetime) -> None:
    from django.utils import timezone

    from django_nexmo_conversion.models import Conversion, SentMessage

    now = timezone.now()
    common.bulk_insert(
        SentMessage,
        (
            {
                "id": n + 1,
                "message_id": f"H{n:09d}",
                "recipient": r.number,
                "sent_at": start + timedelta(seconds=r.at),
                "country": r.country,
                "prefix": r.prefix,
                "network": r.network,
            }
            for n, r in enumerate(history)
        ),
    )
    common.bulk_insert(
        Conversion,
        (
            {
                "message_id": n + 1,
                "delivered": True,
                "status": "reported",
                "timestamp": start + timedelta(seconds=r.at + (r.converts_after or 0)),
                "created_at": now,
                "next_attempt_at": None,
            }
            for n, r in enumerate(history)
            if r.converts_after is not None
        ),
    )


# --- the figures -------------------------------------------------------------------------------


def summary(requests: list[Request], allowed: list[bool]) -> dict[str, Any]:
    through: Counter[str] = Counter()
    per_prefix: Counter[tuple[str, str]] = Counter()
    money: Counter[str] = Counter()
    legit = refused = surge_refused = failing_refused = 0
    for request, ok in zip(requests, allowed, strict=True):
        if request.kind == "legit":
            legit += 1
            refused += not ok
            surge_refused += request.surge and not ok
            failing_refused += request.failing and not ok
        elif ok:
            through[request.kind] += 1
            per_prefix[(request.kind, request.prefix)] += 1
            money[request.kind] += request.price  # type: ignore[assignment]
    worst = max(per_prefix.values(), default=0)
    return {
        "through": dict(through),
        "worst_prefix": worst,
        "money": {k: round(v, 2) for k, v in money.items()},
        "legit": legit,
        "refused": refused,
        "surge_refused": surge_refused,
        "failing_refused": failing_refused,
    }


def main() -> None:
    p = common.parser(__doc__.splitlines()[0], databases=("sqlite",))
    p.add_argument("--seed", type=int, default=24)
    args = p.parse_args()
    db = common.databases_of(args)[0]
    common.setup(db, {"DISPATCH": "manual", "GUARD": {"MODE": "enforce"}})
    from django.conf import settings

    rng = random.Random(args.seed)
    scale = 0.25 if args.quick else 1.0
    table = prefixes(rng)
    history = sorted(legit_day(rng, table, scale=scale, surge=False), key=lambda r: r.at)
    day = legit_day(rng, table, scale=scale, surge=True) + attacks(rng, table)
    day.sort(key=lambda r: r.at)
    attack_kinds = ("sequential", "slow", "new_country")
    day0 = datetime.now(dt_timezone.utc).replace(minute=0, second=0, microsecond=0)
    day0 -= timedelta(hours=26)

    conf = settings.NEXMO_CONVERSION
    alert = (
        float(conf.get("ALERT_WINDOW", 3600)),
        int(conf.get("ALERT_MIN_MESSAGES", 100)),
        float(conf.get("ALERT_MIN_RATE", 0.1)),
    )
    started = time.perf_counter()
    results = {
        "none": summary(day, no_guard(day)),
        "country_block": summary(day, country_block(day, alert)),
    }
    guard_started = time.perf_counter()
    results["guard"] = summary(day, with_guard(day, history, day0))
    guard_seconds = time.perf_counter() - guard_started
    legit = results["guard"]["legit"]
    attack_total = sum(1 for r in day if r.kind != "legit")
    print(
        f"{db}: {legit} legitimate sends, {attack_total} attack sends, "
        f"{len(history)} sends of history; guard run {guard_seconds:.0f} s, "
        f"all {time.perf_counter() - started:.0f} s"
    )
    for way, figures in results.items():
        print(f"  {way}: {figures}")

    g, b = results["guard"], results["country_block"]
    refused_share = g["refused"] / legit
    b_share = b["refused"] / legit
    b_through = sum(b["through"].values())
    g_through = sum(g["through"].values())
    figures = [
        Figure(
            "pumping",
            f"attack sends let through, worst prefix ({db})",
            g["worst_prefix"],
            "sends",
            b["worst_prefix"],
            "blocking the alerted country",
            None,
            "<= 30",
            g["worst_prefix"] <= 30,
            extra=results,
        ),
        Figure(
            "pumping",
            f"attack sends let through, all ({db})",
            g_through,
            "sends",
            b_through,
            "blocking the alerted country",
            None,
            "< (b)",
            g_through < b_through,
        ),
        Figure(
            "pumping",
            f"legitimate sends refused ({db})",
            refused_share * 100,
            "%",
            b_share * 100,
            "blocking the alerted country",
            None,
            "<= 0.1 % and <= (b)",
            refused_share <= 0.001 and refused_share <= b_share,
        ),
        Figure(
            "pumping",
            f"surge + failing network refused ({db})",
            g["surge_refused"] + g["failing_refused"],
            "sends",
            None,
            "",
            None,
            "0",
            g["surge_refused"] + g["failing_refused"] == 0,
        ),
        Figure(
            "pumping",
            f"money let through to attacks ({db})",
            sum(g["money"].get(k, 0) for k in attack_kinds),
            "",
            sum(b["money"].get(k, 0) for k in attack_kinds),
            "blocking the alerted country",
            None,
            "< (b)",
        ),
    ]
    common.finish(args, figures)


if __name__ == "__main__":
    main()
