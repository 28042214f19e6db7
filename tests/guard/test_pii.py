"""The PII detector: each kind found where it is, checksums and context honoured, look-alikes left alone."""

from __future__ import annotations

import pytest

from sluicegate.guard import pii
from sluicegate.guard.rulebook import RuleError


def found(text: str) -> list[tuple[str, str]]:
    return [(f.category, text[f.start : f.end]) for f in pii.scan(text)]


@pytest.mark.parametrize(
    ("text", "category", "value"),
    [
        ("write to jane.doe+news@mail.example.co.uk today", "pii_email", "jane.doe+news@mail.example.co.uk"),
        ("card: 4111 1111 1111 1111, exp 12/29", "pii_card", "4111 1111 1111 1111"),
        ("amex 3782-822463-10005 please", "pii_card", "3782-822463-10005"),
        ("paid with 5555555555554444.", "pii_card", "5555555555554444"),
        ("IBAN DE89 3704 0044 0532 0130 00 (Commerzbank)", "pii_iban", "DE89 3704 0044 0532 0130 00"),
        ("to GB82WEST12345698765432 by Friday", "pii_iban", "GB82WEST12345698765432"),
        ("his SSN is 219-09-9999", "pii_national_id", "219-09-9999"),
        ("NINO: AB 12 34 56 C", "pii_national_id", "AB 12 34 56 C"),
        ("Steuer-ID 86095742719 bitte", "pii_national_id", "86095742719"),
        ("numéro de sécurité sociale 2 69 05 49 588 157 80", "pii_national_id", "2 69 05 49 588 157 80"),
        ("DNI 12345678Z y NIE", "pii_national_id", "12345678Z"),
        ("NIE X1234567L", "pii_national_id", "X1234567L"),
        ("codice fiscale RSSMRA85T10A562S", "pii_national_id", "RSSMRA85T10A562S"),
        ("mijn BSN is 111222333", "pii_national_id", "111222333"),
        ("Aadhaar 2345 6789 0124 linked", "pii_national_id", "2345 6789 0124"),
        ("UID: 234567890124", "pii_national_id", "234567890124"),
        ("from 203.0.113.42 at noon", "pii_ip", "203.0.113.42"),
        ("host 2001:db8:85a3::8a2e:370:7334 down", "pii_ip", "2001:db8:85a3::8a2e:370:7334"),
        ("call me on +44 20 7946 0958", "pii_phone", "+44 20 7946 0958"),
        ("office (415) 555-2671 x204", "pii_phone", "(415) 555-2671 x204"),
        ("Tel. 030 1234567", "pii_phone", "030 1234567"),
        ("born on 14/02/1987 in Leeds", "pii_dob", "14/02/1987"),
        ("Geburtsdatum: 3. März 1979", "pii_dob", "3. März 1979"),
        ("date of birth March 3, 1979", "pii_dob", "March 3, 1979"),
    ],
)
def test_finds_each_kind_where_it_is(text: str, category: str, value: str) -> None:
    assert (category, value) in found(text)


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112",  # fails Luhn
        "IBAN DE89 3704 0044 0532 0130 01",  # fails mod 97
        "SSN 000-12-3456",  # area 000 is never issued
        "Steuer-ID 86095742718",  # wrong check digit
        "codice fiscale RSSMRA85T10A562T",  # wrong check letter
        "DNI 12345678A",  # wrong letter
        "BSN 111222334",  # fails the 11-test
        "111222333 units shipped",  # a BSN-valid number, but nobody said BSN
        "NIR 2 69 05 49 588 157 81",  # wrong key
        "release 2024-03-15 10:30:00 of v1.2.3.4 on 10.0.0 with 1.2.840.113549",
        "order #48213-99812, invoice 2024-000123, ticket 123456789",
        "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "uuid 123e4567-e89b-12d3-a456-426614174000",
        "localhost is 127.0.0.1 and ::1",
        "the meeting on 14/02/1987 was long",  # a date, not a birth date
        "ratio 3.14159265358979 and 1e-10",
        "timestamp 1700000000123 ms",
    ],
)
def test_leaves_look_alikes_alone(text: str) -> None:
    assert found(text) == []


def test_positions_cover_the_value_and_come_in_order() -> None:
    text = "a@b.io then 4111111111111111 then 8.8.8.8"
    findings = pii.scan(text)
    assert [text[f.start : f.end] for f in findings] == ["a@b.io", "4111111111111111", "8.8.8.8"]
    assert all(f.positional and f.rule_id.startswith("pii.") and 0 < f.score <= 1 for f in findings)


def test_a_card_number_is_not_also_reported_as_a_phone() -> None:
    assert found("phone or card? 4111 1111 1111 1111") == [("pii_card", "4111 1111 1111 1111")]


def test_numbers_joined_by_spaces_are_each_found() -> None:
    text = "2024-05-01 10.0.0.1 10.0.0.2 +1-537-640-6812x41586, 206.269.0743x9150"
    assert found(text) == [
        ("pii_ip", "10.0.0.1"),
        ("pii_ip", "10.0.0.2"),
        ("pii_phone", "+1-537-640-6812x41586"),
        ("pii_phone", "206.269.0743x9150"),
    ]


def test_text_in_other_scripts_keeps_positions() -> None:
    text = "İstanbul ofisi: ayşe@örnek.com, kart 4111 1111 1111 1111"
    assert ("pii_card", "4111 1111 1111 1111") in found(text)


def test_rules_from_the_configuration_extend_and_replace() -> None:
    extra = [
        {"id": "pii.employee_id", "category": "pii_employee_id", "pattern": r"EMP-\d{6}", "needs": "EMP-"},
        {"id": "pii.ip.v4", "enabled": False},
    ]
    scanner = pii.scanner(extra)
    text = "EMP-123456 logged in from 203.0.113.42"
    assert [(f.category, text[f.start : f.end]) for f in scanner.scan(text)] == [("pii_employee_id", "EMP-123456")]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"id": "x", "category": "pii_x", "pattern": "("}, "not a valid regular expression"),
        ({"id": "x", "category": "pii_x", "pattern": "a", "validator": "nope"}, "unknown validator"),
        ({"id": "x", "category": "pii_x", "pattern": "a", "colour": "red"}, "unknown keys"),
        ({"id": "x", "category": "pii_x", "pattern": "a", "score": 2}, "score"),
        ({"id": "x", "category": "pii_x", "pattern": "a", "context": "nope"}, "unknown keyword list"),
    ],
)
def test_a_bad_rule_is_refused_with_its_id_and_reason(rule: dict[str, object], message: str) -> None:
    with pytest.raises(RuleError, match=message) as info:
        pii.scanner([rule])
    assert "'x'" in str(info.value)


def test_a_value_right_after_another_number_is_still_found() -> None:
    text = "ids 0 4111 1111 1111 1111 and 7 DE89370400440532013000"
    assert ("pii_card", "4111 1111 1111 1111") in found(text)
    assert ("pii_iban", "DE89370400440532013000") in found(text)
