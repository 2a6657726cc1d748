"""``python -m django_nexmo_conversion.sandbox``: the command line, see :mod:`.cli`."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
