"""The rollups stay exact under concurrent writers: threads record, mark, apply receipts that
move counts to another network, and sweep (fold the uncounted rows in), all on the same
rows at once.

For PostgreSQL and MariaDB (``NEXMO_TEST_DB=postgres`` / ``mariadb``: ``concurrent_writers``
says why not SQLite); the sequential tests in ``test_insights.py`` check the same counts on it.
"""

from __future__ import annotations

import itertools
from typing import Any

from django_nexmo_conversion import insights, mark_converted, record_message, record_sms_response
from django_nexmo_conversion.insights import conversion_rates
from django_nexmo_conversion.models import SentMessage

from .helpers import concurrent_writers, one_at_a_time, run_together
from .test_insights import assert_matches_recount, receipt

THREADS = 6
PER_THREAD = 15


@concurrent_writers
def test_concurrent_writers_lose_no_count(settings: Any):
    # Recorded without a network: receipts fill it in while other threads convert them.
    # The first half is counted already (their receipts move counts); the second is not (the
    # sweeps running below count them wherever their receipts have put them by then).
    half = THREADS * PER_THREAD // 2
    waiting = [
        record_message(f"W{index:015d}", recipient=f"4477009{index:05d}") for index in range(half)
    ]
    assert insights.refresh() == half
    waiting += [
        record_message(f"W{index:015d}", recipient=f"4477009{index:05d}")
        for index in range(half, THREADS * PER_THREAD)
    ]
    next_turn = one_at_a_time(itertools.count())

    def work() -> int:
        me = next_turn()
        mine = waiting[me::THREADS]
        for index, message in enumerate(mine):
            response = {
                "messages": [
                    {
                        "to": f"3361234{me:02d}{index:02d}",
                        "message-id": f"N{me:02d}{index:013d}",
                        "status": "0",
                        "network": "20801",
                    }
                ]
            }
            (fresh,) = record_sms_response(response)
            mark_converted(fresh)
            # Half the waiting messages: the receipt first, the other half: the mark first;
            # their neighbour's are being handled by another thread at the same moment.
            neighbour = waiting[(waiting.index(message) + 1) % len(waiting)]
            if index % 2:
                receipt(message, network="23410")
                mark_converted(neighbour)
            else:
                mark_converted(message)
                receipt(neighbour, network="23410")
            if index % 3 == me % 3:
                insights.refresh(batch_size=7)  # a sweep, while the others write
        return me

    done, errors = run_together(THREADS, work)
    assert errors == []
    assert sorted(done) == list(range(THREADS))
    for by in ("country", "network", "day"):
        assert_matches_recount(by)
    networks = {row.key: row for row in conversion_rates(by="network")}
    assert networks["20801"].sent == THREADS * PER_THREAD
    assert networks["20801"].converted == THREADS * PER_THREAD
    # The receipts moved counts to the new network while sweeps were counting the same
    # messages and their conversions (the recounts above prove none was lost or counted
    # twice; they fold what is left first, as the next sweep would).
    moved = SentMessage.objects.filter(network="23410")
    assert networks["23410"].sent == moved.count() > THREADS * PER_THREAD / 2
    assert networks["23410"].converted == moved.filter(conversion__delivered=True).count() > 0
