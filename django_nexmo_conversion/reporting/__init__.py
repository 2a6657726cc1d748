"""Reporting: claim due conversions (``claims``), send them (``engine``), and write what Nexmo
answered (``outcomes``)."""
