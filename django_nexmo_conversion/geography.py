"""Where a number or a mobile network is: the country of a phone number (``phonenumbers``),
and readable labels for countries and MCCMNC network codes.

The labels come from maintained data sets, never a table typed here: country names from
``pycountry`` (ISO 3166) and operator names from ``mcc-mnc-p1`` (ITU-T bulletins and
Wikipedia), both in the ``[insights]`` extra. Without them a label is the code itself, so the
app imports and counts alike; only the names are missing.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import phonenumbers

__all__ = [
    "country_label",
    "country_of",
    "is_region",
    "network_label",
    "operators",
    "prefix_of",
]


def is_region(code: object) -> bool:
    """Whether ``code`` is an ISO 3166-1 alpha-2 region ``phonenumbers`` can parse numbers for."""
    return isinstance(code, str) and code in phonenumbers.SUPPORTED_REGIONS


def country_of(number: str, default_region: str | None = None) -> str:
    """The ISO 3166-1 alpha-2 country of ``number`` (Vonage's digits-only format, or with a
    leading +), or ``""`` when it cannot be told.

    Vonage writes numbers in international format without the +, so a number is first read
    as international; only if that gives no valid number is it read as a national number of
    ``default_region`` (``DEFAULT_REGION``).
    """
    digits = number.lstrip("+")
    if not digits:
        return ""
    international = _parse(f"+{digits}", None)
    if international is not None and phonenumbers.is_valid_number(international):
        return phonenumbers.region_code_for_number(international) or ""
    national = _parse(digits, default_region) if default_region else None
    if national is not None and phonenumbers.is_valid_number(national):
        return phonenumbers.region_code_for_number(national) or ""
    # A number outside the allocated ranges (test and drama numbers, new ranges a stale
    # metadata release does not know): its country calling code still names the country.
    for candidate in (international, national):
        if candidate is not None and phonenumbers.is_possible_number(candidate):
            region = phonenumbers.region_code_for_country_code(candidate.country_code or 0)
            return "" if region == phonenumbers.UNKNOWN_REGION else region
    return ""


def prefix_of(number: str, digits: int, default_region: str | None = None) -> str:
    """The number's country calling code and the first ``digits`` digits after it
    (``"447700900123"`` -> ``"4477009"`` for 5), or ``""`` when no country calling code can be
    read. What the send guard counts by (``SentMessage.prefix``)."""
    bare = number.lstrip("+")
    if not bare:
        return ""
    parsed = _parse(f"+{bare}", None)
    if (parsed is None or not phonenumbers.is_possible_number(parsed)) and default_region:
        parsed = _parse(bare, default_region) or parsed
    if parsed is None or not parsed.country_code:
        return ""
    if phonenumbers.region_code_for_country_code(parsed.country_code) == "ZZ":
        return ""
    national = phonenumbers.national_significant_number(parsed)
    return f"{parsed.country_code}{national[:digits]}"


def _parse(text: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None


@lru_cache(maxsize=1)
def operators() -> dict[str, Any]:
    """MCCMNC -> operator data from ``mcc-mnc-p1`` (empty without the ``[insights]`` extra);
    read once per process (``operators.cache_clear()`` reads it again)."""
    try:
        from mcc_mnc_lut.p1_mnc import P1_MNC  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError:  # the [insights] extra is not installed: labels are the codes
        return {}
    return dict(P1_MNC)


def country_label(code: str) -> str:
    """``"GB"`` -> ``"United Kingdom"`` (the code itself without ``pycountry``)."""
    if not code:
        return ""
    try:
        import pycountry  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return code
    country = pycountry.countries.get(alpha_2=code)
    return str(getattr(country, "name", code)) if country is not None else code


def network_label(mccmnc: str) -> str:
    """``"23415"`` -> ``"Vodafone (United Kingdom)"``; the code itself when unknown."""
    entry = operators().get(mccmnc)
    if isinstance(entry, list):
        # One code used in several territories (310260: the US, Puerto Rico, ...): the
        # operator is the same, the country would be a guess, so it is left out.
        names = {str(e.get("operator") or e.get("brand") or "") for e in entry}
        return names.pop() if len(names) == 1 and "" not in names else mccmnc
    if not isinstance(entry, dict):
        return mccmnc
    operator = str(entry.get("operator") or entry.get("brand") or mccmnc)
    codes = entry.get("cc2s") or []
    country = country_label(codes[0]) if codes else ""
    return f"{operator} ({country})" if country else operator
