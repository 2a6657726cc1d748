"""A local stand-in for the Nexmo (Vonage) Conversion API, for tests, demos and benchmarks.

Run it with ``python -m django_nexmo_conversion.sandbox`` or use :class:`Sandbox` in code::

    with Sandbox(latency=0.01) as sandbox:
        sandbox.script(503, message_id="abc")  # the first report of "abc" fails
        ...  # point NEXMO_CONVERSION["BASE_URL"] at sandbox.base_url
        assert sandbox.reported()[0].message_id == "abc"

Importing this package never imports Django: it is standard library only. The modules:
:mod:`.rules` decides what the API answers, :mod:`.server` serves it over HTTP,
:mod:`.sender` posts Vonage-style webhooks to the app, :mod:`.cli` is the command line.
"""

from .rules import CHANNELS, DEFAULT_API_KEY, DEFAULT_API_SECRET, FAULTS, AccountSpec, ScriptItem
from .server import ReceivedRequest, Sandbox

__all__ = [
    "CHANNELS",
    "DEFAULT_API_KEY",
    "DEFAULT_API_SECRET",
    "FAULTS",
    "AccountSpec",
    "ReceivedRequest",
    "Sandbox",
    "ScriptItem",
]
