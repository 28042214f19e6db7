"""Personal data in text: e-mail addresses, phone numbers, payment cards (Luhn), IBANs (mod 97), national
identity numbers (US, UK, DE, FR, ES, IT, NL, IN, with their check digits where they have one), IP
addresses and dates of birth. Patterns live in `rules/pii.yaml`; the checks that a regular expression
cannot do (checksums, plausibility) are the validators below."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

from sluicegate.guard.findings import Finding
from sluicegate.guard.rulebook import RuleScanner, Validator, load

CATEGORIES = ("pii_email", "pii_phone", "pii_card", "pii_iban", "pii_national_id", "pii_ip", "pii_dob")


def scan(text: str) -> list[Finding]:
    """The personal data in `text`, as positional findings in order of position."""
    return default_scanner().scan(text)


@cache
def default_scanner() -> RuleScanner:
    """The shipped rules, compiled once."""
    return RuleScanner(load("pii.yaml", VALIDATORS))


def scanner(extra: Iterable[Mapping[str, Any]]) -> RuleScanner:
    """The shipped rules with `extra` ones from the configuration (same shape; the same id replaces)."""
    return RuleScanner(load("pii.yaml", VALIDATORS, extra))


# -- validators -------------------------------------------------------------------------------------------

_NOT_DIGIT = re.compile(r"\D")


def _digits(value: str) -> str:
    return _NOT_DIGIT.sub("", value)


def luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


# issuer prefixes of the card networks and the lengths of their numbers
_CARD_NETWORKS = (
    (re.compile(r"4"), (13, 16, 19)),  # Visa
    (re.compile(r"5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720)"), (16,)),  # Mastercard
    (re.compile(r"3[47]"), (15,)),  # American Express
    (re.compile(r"6(?:011|4[4-9]|5)"), (16, 17, 18, 19)),  # Discover
    (re.compile(r"3(?:0[0-5]|[689])"), (14, 15, 16, 17, 18, 19)),  # Diners Club
    (re.compile(r"35"), (16, 17, 18, 19)),  # JCB
    (re.compile(r"62"), (16, 17, 18, 19)),  # UnionPay
    (re.compile(r"220[0-4]"), (16, 17, 18, 19)),  # Mir
    (re.compile(r"5[06-9]|6|0604"), (12, 13, 14, 15, 16, 17, 18, 19)),  # Maestro
)


_CARD_WORDS = re.compile(
    r"card|carte|karte|tarjeta|carta|kaart|maestro|visa|pan\b|pay|paid|zahl|pago|pagat|betaal|paie", re.IGNORECASE
)


def _card(value: str, text: str, start: int) -> int:
    digits = _digits(value)
    if len(set(digits)) < 2 or not any(p.match(digits) and len(digits) in n for p, n in _CARD_NETWORKS):
        return 0
    if len(digits) == 12 and not _CARD_WORDS.search(text, max(0, start - 48), start):
        return 0  # twelve digits (a few Maestro cards) are too common to stand alone
    if len(digits) != len(value):  # separated: in the groups cards are printed in (fours, 4-6-5, 4-6-4)
        groups = [len(g) for g in re.split(r"[ \-]", value)]
        if not (all(g == 4 for g in groups[:-1]) and 1 <= groups[-1] <= 4) and groups not in ([4, 6, 5], [4, 6, 4]):
            return 0
    return len(value) if luhn(digits) else 0


# IBAN length by country (ISO 13616 registry)
_IBAN_LENGTH = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
    "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
    "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
    "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29,
    "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip


def _iban(value: str, text: str, start: int) -> int:
    length = _IBAN_LENGTH.get(value[:2])
    if length is None:
        return 0
    taken = 0
    end = 0
    for i, ch in enumerate(value):  # the country's length in characters, spaces aside
        if ch != " ":
            taken += 1
            if taken == length:
                end = i + 1
                break
    if not end or (end < len(value) and value[end] != " " and end != len(value)):
        return 0
    compact = value[:end].replace(" ", "")
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return end if int(number) % 97 == 1 else 0


def _fr_nir(value: str, text: str, start: int) -> int:
    compact = value.replace(" ", "").upper()
    body, key = compact[:13], compact[13:]
    body = body.replace("2A", "19").replace("2B", "18")
    return len(value) if 97 - int(body) % 97 == int(key) else 0


_CF_ODD = [1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23]


def _it_cf(value: str, text: str, start: int) -> int:
    total = 0
    for i, ch in enumerate(value[:15]):
        n = int(ch) if ch.isdigit() else ord(ch) - 65
        total += _CF_ODD[n] if i % 2 == 0 else n
    return len(value) if chr(65 + total % 26) == value[15] else 0


def _de_steuer_id(value: str, text: str, start: int) -> int:
    digits = _digits(value)
    counts = sorted((digits[:10].count(d) for d in set(digits[:10])), reverse=True)
    if counts[0] not in (2, 3) or counts[1] != 1:  # exactly one digit repeated (twice or thrice)
        return 0
    product = 10
    for ch in digits[:10]:  # ISO 7064 MOD 11,10
        total = (int(ch) + product) % 10 or 10
        product = (total * 2) % 11
    check = (11 - product) % 10
    return len(value) if check == int(digits[10]) else 0


_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def _es_dni(value: str, text: str, start: int) -> int:
    compact = value.replace(" ", "").replace("-", "")
    number = compact[:-1].replace("X", "0").replace("Y", "1").replace("Z", "2")
    return len(value) if _DNI_LETTERS[int(number) % 23] == compact[-1] else 0


def _us_ssn(value: str, text: str, start: int) -> int:
    d = _digits(value)
    if d[:3] in ("000", "666") or d[0] == "9" or d[3:5] == "00" or d[5:] == "0000" or len(set(d)) < 3:
        return 0
    return len(value)


def _nl_bsn(value: str, text: str, start: int) -> int:
    d = _digits(value)
    total = sum(int(ch) * w for ch, w in zip(d[:8], range(9, 1, -1), strict=True)) - int(d[8])
    return len(value) if total % 11 == 0 and total > 0 else 0


_VERHOEFF_D = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 2, 3, 4, 0, 6, 7, 8, 9, 5], [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
    [3, 4, 0, 1, 2, 8, 9, 5, 6, 7], [4, 0, 1, 2, 3, 9, 5, 6, 7, 8], [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2], [7, 6, 5, 9, 8, 2, 1, 0, 4, 3], [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
]  # fmt: skip
_VERHOEFF_P = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 5, 7, 6, 2, 8, 3, 0, 9, 4], [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
    [8, 9, 1, 6, 0, 4, 3, 5, 2, 7], [9, 4, 5, 3, 1, 2, 6, 8, 7, 0], [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5], [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
]  # fmt: skip


def verhoeff(digits: str) -> bool:
    c = 0
    for i, ch in enumerate(reversed(digits)):
        c = _VERHOEFF_D[c][_VERHOEFF_P[i % 8][int(ch)]]
    return c == 0


def _verhoeff(value: str, text: str, start: int) -> int:
    d = _digits(value)
    return len(value) if len(set(d)) > 2 and verhoeff(d) else 0


_VERSION_BEFORE = re.compile(r"(?:v|version|ver\.?|release|build|firmware)\s*$", re.IGNORECASE)


def _ipv4(value: str, text: str, start: int) -> int:
    if value.startswith(("127.", "0.")) or value == "255.255.255.255":
        return 0
    if _VERSION_BEFORE.search(text[max(0, start - 10) : start]):
        return 0
    return len(value)


def _ipv6(value: str, text: str, start: int) -> int:
    try:
        address = ipaddress.IPv6Address(value)
    except ValueError:
        return 0
    if address.is_loopback or address.is_unspecified or sum(1 for g in value.split(":") if g) < 3:
        return 0
    return len(value)


_MONTHS = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "january",
    "february", "march", "april", "june", "july", "august", "september", "october", "november", "december",
    "januar", "februar", "märz", "maerz", "mai", "juni", "juli", "oktober", "dezember", "janvier", "février",
    "fevrier", "mars", "avril", "juin", "juillet", "août", "aout", "septembre", "octobre", "novembre",
    "décembre", "decembre", "enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto",
    "septiembre", "setiembre", "octubre", "noviembre", "diciembre", "gennaio", "febbraio", "aprile", "maggio",
    "giugno", "luglio", "settembre", "ottobre", "dicembre", "januari", "februari", "maart", "mei", "augustus",
]  # fmt: skip
_MONTH_SET = frozenset(_MONTHS)
_NUMERIC_DATE = re.compile(r"(\d{1,4})[./\-](\d{1,2})[./\-](\d{1,4})")
_WORD = re.compile(r"[^\W\d_]+")


def _date(value: str, text: str, start: int) -> int:
    m = _NUMERIC_DATE.fullmatch(value)
    if m:
        a, b, c = (int(x) for x in m.groups())
        if len(m.group(1)) == 4:
            year, month, day = a, b, c
        else:
            year, (month, day) = c, ((b, a) if b <= 12 else (a, b))
        if not (1 <= month <= 12 and 1 <= day <= 31 and (year < 100 or 1880 <= year <= 2100)):
            return 0
        return len(value)
    words = [w.lower() for w in _WORD.findall(value)]
    return len(value) if any(w.rstrip(".") in _MONTH_SET for w in words) else 0


_EXTENSION = re.compile(r"\s?(?:x|ext\.?|extension)\s?\d+$", re.IGNORECASE)
_DATE_LIKE = re.compile(r"\(?\d{1,4}\)?[./\-]\d{1,2}[./\-]\d{1,4}")


def _inside_a_number(text: str, start: int) -> bool:
    """Whether `start` follows a group of digits ("DE89 3704 0044 ..."): a phone number does not start in
    the middle of a longer number (a "00" there is not a dialling prefix)."""
    return start >= 2 and text[start - 1] in " -" and text[start - 2].isdigit()


def _phone(value: str, text: str, start: int) -> int:
    if value[0] != "+" and _inside_a_number(text, start):
        return 0
    main = _EXTENSION.sub("", value)
    n = len(_digits(main))
    if not 8 <= n <= 15 or _DATE_LIKE.fullmatch(main):
        return 0
    return len(value)


_GROUPS = re.compile(r"\d+")


def _phone_national(value: str, text: str, start: int) -> int:
    if value[0] != "(" and _inside_a_number(text, start):
        return 0
    main = _EXTENSION.sub("", value)
    n = len(_digits(main))
    if not 8 <= n <= 13 or _DATE_LIKE.fullmatch(main) or _DATE_LIKE.match(main):
        return 0
    groups = [len(g) for g in _GROUPS.findall(main)]
    if main[0] == "(" or main[0] == "0" or groups[:3] == [3, 3, 4]:
        return len(value)
    return 0


VALIDATORS: dict[str, Validator] = {
    "card": _card,
    "iban": _iban,
    "fr_nir": _fr_nir,
    "it_cf": _it_cf,
    "de_steuer_id": _de_steuer_id,
    "es_dni": _es_dni,
    "us_ssn": _us_ssn,
    "nl_bsn": _nl_bsn,
    "verhoeff": _verhoeff,
    "ipv4": _ipv4,
    "ipv6": _ipv6,
    "date": _date,
    "phone": _phone,
    "phone_national": _phone_national,
}
