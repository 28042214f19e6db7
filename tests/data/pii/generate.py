"""Generates the labelled PII corpus (corpus.jsonl beside this file): sentences in six languages carrying
personal data made with Faker (seeded, so the file is the same on every run with the same Faker), each
value's category and position labelled, and hard negatives (order numbers, versions, timestamps, hashes,
UUIDs, digits failing Luhn, ...) that must give no finding. Every fifth item is held out: tests assert the
targets on the held-out part, the rules were tuned on the rest.

    python tests/data/pii/generate.py          # rewrites corpus.jsonl (needs the dev extra: faker)

Faker does not make valid UK National Insurance numbers, German tax IDs or Aadhaar numbers (its en_GB and
en_IN ones fail their own rules), so those are made here with their check digits.
"""

from __future__ import annotations

import random
import re
import string
import uuid
from pathlib import Path
from typing import Any

import orjson
from faker import Faker

SEED = 20261202
PER_KIND = 400  # items per kind of personal data
HERE = Path(__file__).resolve().parent

LOCALES = {"en": "en_US", "gb": "en_GB", "de": "de_DE", "fr": "fr_FR", "es": "es_ES", "it": "it_IT", "nl": "nl_NL"}
LANG = {"en": "en", "gb": "en", "de": "de", "fr": "fr", "es": "es", "it": "it", "nl": "nl"}

# {v} is the value; each language's sentences for each kind, as people write them
TEMPLATES: dict[str, dict[str, list[str]]] = {
    "email": {
        "en": ["Please send the invoice to {v} by Friday.", "You can reach me at {v}.", "cc: {v}", "Contact: {v}"],
        "de": ["Bitte schicken Sie die Rechnung an {v}.", "Meine E-Mail-Adresse lautet {v}."],
        "fr": ["Merci d'écrire à {v} avant lundi.", "Mon adresse e-mail est {v}."],
        "es": ["Escríbeme a {v}, por favor.", "Mi correo es {v}."],
        "it": ["Scrivimi a {v} entro domani.", "La mia email è {v}."],
        "nl": ["Stuur de factuur naar {v}.", "Mijn e-mailadres is {v}."],
    },
    "phone": {
        "en": ["Call me on {v} after 5pm.", "My phone number is {v}.", "Tel: {v}", "Mobile: {v}, text me anytime."],
        "de": ["Rufen Sie mich unter {v} an.", "Telefon: {v}", "Meine Handynummer ist {v}."],
        "fr": ["Appelez-moi au {v}.", "Mon numéro de téléphone est le {v}.", "Tél. portable : {v}"],
        "es": ["Llámame al {v}.", "Mi teléfono es {v}.", "Móvil: {v}"],
        "it": ["Chiamami al {v}.", "Il mio numero di telefono è {v}.", "Cellulare: {v}"],
        "nl": ["Bel me op {v}.", "Mijn telefoonnummer is {v}.", "Mobiel: {v}"],
    },
    "card": {
        "en": ["Charge it to my card {v}, exp 09/28.", "Card number: {v}", "I paid with {v} yesterday."],
        "de": ["Bitte belasten Sie meine Karte {v}.", "Kartennummer: {v}"],
        "fr": ["Ma carte bancaire : {v}.", "Payez avec la carte {v}."],
        "es": ["Mi tarjeta es {v}.", "Número de tarjeta: {v}"],
        "it": ["La mia carta è {v}.", "Numero carta: {v}"],
        "nl": ["Mijn creditcard is {v}.", "Kaartnummer: {v}"],
    },
    "iban": {
        "en": ["Please transfer the deposit to {v}.", "IBAN: {v}", "My account is {v} (personal)."],
        "de": ["Bitte überweisen Sie an {v}.", "IBAN: {v}, BIC folgt."],
        "fr": ["Virement sur le compte {v}.", "Mon IBAN : {v}"],
        "es": ["Transferencia a la cuenta {v}.", "IBAN {v}"],
        "it": ["Bonifico su {v}, grazie.", "IBAN: {v}"],
        "nl": ["Maak het bedrag over naar {v}.", "IBAN {v}"],
    },
    "national_id": {
        "en": ["My SSN is {v}.", "Social security number: {v}", "SSN {v}, DOB on file."],
        "gb": ["My National Insurance number is {v}.", "NI number: {v}", "NINO {v}"],
        "de": ["Meine Steuer-ID ist {v}.", "Steueridentifikationsnummer: {v}", "IdNr {v}"],
        "fr": ["Mon numéro de sécurité sociale est {v}.", "NIR : {v}", "N° de sécu {v}"],
        "es": ["Mi DNI es {v}.", "NIF: {v}", "NIE {v}, residente."],
        "it": ["Il mio codice fiscale è {v}.", "Codice fiscale: {v}", "CF {v}"],
        "nl": ["Mijn BSN is {v}.", "Burgerservicenummer: {v}", "BSN {v}"],
        "in": ["My Aadhaar number is {v}.", "Aadhaar: {v}", "UID {v}"],
    },
    "ip": {
        "en": ["The login came from {v} at 03:12.", "Block {v} on the firewall.", "client_ip={v}"],
        "de": ["Der Zugriff kam von {v}.", "IP-Adresse: {v}"],
        "fr": ["La connexion venait de {v}.", "Adresse IP : {v}"],
        "es": ["El acceso vino de {v}.", "Dirección IP: {v}"],
        "it": ["L'accesso è arrivato da {v}.", "Indirizzo IP: {v}"],
        "nl": ["De login kwam van {v}.", "IP-adres: {v}"],
    },
    "dob": {
        "en": ["I was born on {v} in Leeds.", "Date of birth: {v}", "DOB {v}", "Born {v}."],
        "de": ["Ich bin am {v} geboren.", "Geburtsdatum: {v}", "geboren am {v}"],
        "fr": ["Je suis né le {v} à Lyon.", "Date de naissance : {v}", "née le {v}"],
        "es": ["Nací el {v}.", "Fecha de nacimiento: {v}", "nacido el {v}"],
        "it": ["Sono nato il {v} a Roma.", "Data di nascita: {v}", "nata il {v}"],
        "nl": ["Ik ben geboren op {v}.", "Geboortedatum: {v}"],
    },
}
MONTHS = {
    "en": "January February March April May June July August September October November December",
    "de": "Januar Februar März April Mai Juni Juli August September Oktober November Dezember",
    "fr": "janvier février mars avril mai juin juillet août septembre octobre novembre décembre",
    "es": "enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre diciembre",
    "it": "gennaio febbraio marzo aprile maggio giugno luglio agosto settembre ottobre novembre dicembre",
    "nl": "januari februari maart april mei juni juli augustus september oktober november december",
}
CARD_TYPES = ["visa16", "visa13", "mastercard", "amex", "discover", "jcb16", "diners", "maestro"]
IBAN_LOCALES = ["de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "en_GB", "pl_PL", "pt_PT", "fi_FI", "de_AT"]


def nino(rng: random.Random) -> str:
    first = rng.choice("ABCEGHJKLMNOPRSTWXYZ")
    second = rng.choice("ABCEGHJKLMNPRSTWXYZ")
    while first + second in ("BG", "GB", "KN", "NK", "NT", "TN", "ZZ"):
        second = rng.choice("ABCEGHJKLMNPRSTWXYZ")
    digits = "".join(rng.choice(string.digits) for _ in range(6))
    spaced = rng.random() < 0.5
    body = f"{digits[:2]} {digits[2:4]} {digits[4:]}" if spaced else digits
    return f"{first}{second}{' ' if spaced else ''}{body}{' ' if spaced else ''}{rng.choice('ABCD')}"


def steuer_id(rng: random.Random) -> str:
    while True:
        digits = [rng.randint(1, 9)] + [rng.randint(0, 9) for _ in range(9)]
        counts = sorted((digits.count(d) for d in set(digits)), reverse=True)
        if counts[0] in (2, 3) and counts[1] == 1:
            break
    product = 10
    for d in digits:
        total = (d + product) % 10 or 10
        product = (total * 2) % 11
    text = "".join(map(str, digits)) + str((11 - product) % 10)
    return f"{text[:2]} {text[2:5]} {text[5:8]} {text[8:]}" if rng.random() < 0.3 else text


def aadhaar(rng: random.Random) -> str:
    from sluicegate.guard.pii import verhoeff

    while True:
        body = str(rng.randint(2, 9)) + "".join(rng.choice(string.digits) for _ in range(10))
        for check in string.digits:
            if verhoeff(body + check):
                text = body + check
                return f"{text[:4]} {text[4:8]} {text[8:]}" if rng.random() < 0.6 else text


def grouped(digits: str, rng: random.Random) -> str:
    style = rng.random()
    if style < 0.5:
        return digits
    sep = " " if style < 0.8 else "-"
    if len(digits) == 15:
        return sep.join((digits[:4], digits[4:10], digits[10:]))
    return sep.join(digits[i : i + 4] for i in range(0, len(digits), 4))


def value(kind: str, region: str, fake: Faker, rng: random.Random) -> str:
    if kind == "email":
        return rng.choice([fake.email, fake.free_email, fake.company_email, fake.ascii_email])()
    if kind == "phone":
        return str(fake.phone_number())
    if kind == "card":
        return grouped(fake.credit_card_number(card_type=rng.choice(CARD_TYPES)), rng)
    if kind == "iban":
        iban = Faker(rng.choice(IBAN_LOCALES)).iban() if rng.random() < 0.5 else fake.iban()
        return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4)) if rng.random() < 0.4 else iban
    if kind == "national_id":
        if region == "en":
            return str(fake.ssn())
        if region == "gb":
            return nino(rng)
        if region == "de":
            return steuer_id(rng)
        if region == "fr":
            nir = str(Faker("fr_FR").ssn())
            return (
                " ".join((nir[0], nir[1:3], nir[3:5], nir[5:7], nir[7:10], nir[10:13], nir[13:]))
                if rng.random() < 0.3
                else nir
            )
        if region == "es":
            return str(rng.choice([fake.nif, fake.nie])())
        if region == "in":
            return aadhaar(rng)
        return str(fake.ssn())  # it: codice fiscale; nl: BSN
    if kind == "ip":
        return rng.choice([fake.ipv4_public, fake.ipv4_private, fake.ipv6])()
    if kind == "dob":
        born = fake.date_of_birth(minimum_age=18, maximum_age=90)
        lang = LANG[region]
        month = MONTHS[lang].split()[born.month - 1]
        formats = {
            "en": [
                f"{born:%m/%d/%Y}",
                f"{born:%Y-%m-%d}",
                f"{month} {born.day}, {born.year}",
                f"{born.day} {month} {born.year}",
            ],
            "de": [f"{born:%d.%m.%Y}", f"{born.day}. {month} {born.year}"],
            "fr": [f"{born:%d/%m/%Y}", f"{born.day} {month} {born.year}"],
            "es": [f"{born:%d/%m/%Y}", f"{born.day} de {month} de {born.year}"],
            "it": [f"{born:%d/%m/%Y}", f"{born.day} {month} {born.year}"],
            "nl": [f"{born:%d-%m-%Y}", f"{born.day} {month} {born.year}"],
        }[lang]
        return rng.choice(formats)
    raise ValueError(kind)


def regions(kind: str) -> list[str]:
    return list(TEMPLATES[kind]) if kind == "national_id" else ["en", "gb", "de", "fr", "es", "it", "nl"]


def positives(rng: random.Random) -> list[dict[str, Any]]:
    items = []
    for kind in TEMPLATES:
        for i in range(PER_KIND):
            region = regions(kind)[i % len(regions(kind))]
            fake = Faker(LOCALES.get(region, "en_US") if region != "in" else "en_IN")
            fake.seed_instance(rng.randrange(1 << 30))
            v = value(kind, region, fake, rng)
            lang = region if region in TEMPLATES[kind] else LANG.get(region, "en")
            template = rng.choice(TEMPLATES[kind][lang])
            before = rng.choice(["", "Hi, ", "Thanks! ", "Update for the ticket: "])
            text = before + template.replace("{v}", v)
            start = text.index(v)
            items.append(
                {"kind": kind, "region": region, "text": text, "spans": [[f"pii_{kind}", start, start + len(v)]]}
            )
    return items


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def failing_luhn(rng: random.Random, n: int) -> str:
    while True:
        digits = str(rng.randint(1, 9)) + "".join(rng.choice(string.digits) for _ in range(n - 1))
        if not luhn_ok(digits):
            return digits


def day(rng: random.Random) -> str:
    return f"{rng.randint(2019, 2026)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def clock(rng: random.Random) -> str:
    return f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"


def negatives(rng: random.Random) -> list[dict[str, Any]]:
    def hexs(n: int) -> str:
        return "".join(rng.choice("0123456789abcdef") for _ in range(n))

    makers = [
        lambda: f"Order #{rng.randint(100000, 99999999)} shipped on {rng.randint(1, 28)} May.",
        lambda: f"Invoice INV-{rng.randint(2019, 2026)}-{rng.randint(1, 99999):05d} is overdue.",
        lambda: f"Ticket {rng.randint(10000, 999999)}-{rng.randint(10, 99)} was merged into {rng.randint(1000, 9999)}.",
        lambda: f"Upgrade to v{rng.randint(0, 9)}.{rng.randint(0, 40)}.{rng.randint(0, 30)} before Monday.",
        lambda: f"version {rng.randint(1, 12)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 200)} fixes it",
        lambda: f"OID 1.2.840.{rng.randint(10000, 113549)}.1.1.{rng.randint(1, 12)}",
        lambda: f"deployed at {day(rng)}T{clock(rng)}Z",
        lambda: f"log: {day(rng)} {clock(rng)},{rng.randint(0, 999):03d} INFO worker {rng.randint(1, 64)} started",
        lambda: (
            f"epoch {rng.randint(1_500_000_000, 1_800_000_000)} ms {rng.randint(1_500_000_000_000, 1_800_000_000_000)}"
        ),
        lambda: f"The meeting is on {rng.randint(1, 28)}/{rng.randint(1, 12)}/{rng.randint(2000, 2030)} at 10:30.",
        lambda: f"commit {hexs(40)} fixed the build",
        lambda: f"sha256:{hexs(64)}",
        lambda: f"md5 {hexs(32)}",
        lambda: f"request id {uuid.UUID(int=rng.getrandbits(128))}",
        lambda: f"reference {failing_luhn(rng, rng.choice([13, 15, 16, 19]))}",
        lambda: "batch " + " ".join(re.findall("....", failing_luhn(rng, 16))),
        lambda: (
            f"It costs ${rng.randint(1, 9)},{rng.randint(100, 999)}.{rng.randint(10, 99)}"
            + f" for {rng.randint(2, 500)} units."
        ),
        lambda: f"ISBN 978-{rng.randint(0, 9)}-{rng.randint(10, 99)}-{rng.randint(100000, 999999)}-{rng.randint(0, 9)}",
        lambda: f"Coordinates {rng.uniform(-90, 90):.4f}, {rng.uniform(-180, 180):.4f}",
        lambda: f"ports {rng.randint(1024, 9999)} {rng.randint(1024, 9999)} {rng.randint(1024, 9999)} are open",
        lambda: f"for i in range({rng.randint(2, 999)}): total += x[i] * {rng.randint(2, 99)}",
        lambda: f"tracking 1Z{hexs(6).upper()}{rng.randint(10**9, 10**10 - 1)}",
        lambda: f"room {rng.randint(100, 999)}, floor {rng.randint(1, 30)}, building {rng.randint(1, 9)}",
        lambda: f"{rng.randint(10, 99)}% of {rng.randint(1000, 99999)} users clicked in {rng.randint(1990, 2025)}",
        lambda: f"serial {rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}-{rng.randint(10, 99)}",
        lambda: f"matrix [[{rng.randint(0, 9)}, {rng.randint(0, 9)}], [{rng.randint(0, 9)}, {rng.randint(0, 9)}]]",
        lambda: f"localhost:{rng.randint(1024, 65535)} and 127.0.0.1 and ::1",
        lambda: f"scored {rng.randint(100000000, 999999999)} points",  # nine digits, nobody said BSN or SSN
        lambda: f"gene chr{rng.randint(1, 22)}:{rng.randint(1000000, 99999999)}-{rng.randint(1000000, 99999999)}",
        lambda: f"MAC {':'.join(hexs(2) for _ in range(6))}",
    ]
    items = []
    for i in range(PER_KIND * 3):
        text = makers[i % len(makers)]()
        items.append({"kind": "negative", "region": "-", "text": text, "spans": []})
    return items


def main() -> None:
    rng = random.Random(SEED)
    Faker.seed(SEED)
    items = positives(rng) + negatives(rng)
    rng.shuffle(items)
    with (HERE / "corpus.jsonl").open("wb") as out:
        for i, item in enumerate(items):
            item["split"] = "held_out" if i % 5 == 0 else "tune"
            out.write(orjson.dumps(item) + b"\n")
    print(f"{len(items)} items written to {HERE / 'corpus.jsonl'} (generated text: no real person's data)")


if __name__ == "__main__":
    main()
