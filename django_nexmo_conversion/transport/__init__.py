"""What travels to Vonage, and nothing else: the form fields and answers (``wire``), the
request signature (``signing``), one POST (``client``), one deadline per request
(``deadline``), secrets masked in echoed answers (``redaction``) and OpenTelemetry spans
(``telemetry``).

It imports no models, no settings and no database (a test walks the imports to keep it so):
whatever it needs arrives as arguments, so it can be read, tested and benchmarked alone.
"""
