"""Redaction: typed placeholders numbered per request, restored on the way back, and streams that hold
back only what could still be the start of a match."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from sluicegate.guard.redact import Redactor, StreamRedactor, restore, sensitive

CARD = "4111 1111 1111 1111"


def test_placeholders_are_typed_and_the_same_value_keeps_its_number() -> None:
    redactor = Redactor()
    first = redactor.redact_all("mail jane@example.com or bob@example.org, card " + CARD)
    second = redactor.redact_all("again: bob@example.org and jane@example.com")
    assert first == "mail <EMAIL_1> or <EMAIL_2>, card <CARD_1>"
    assert second == "again: <EMAIL_2> and <EMAIL_1>"
    assert redactor.mapping == {"<EMAIL_1>": "jane@example.com", "<EMAIL_2>": "bob@example.org", "<CARD_1>": CARD}


def test_secrets_get_their_kind_as_placeholder() -> None:
    redactor = Redactor()
    text = "use AKIAZ7QWERTY2345ABCD and postgres://app:Tr0ub4dor3x@db/app"
    assert redactor.redact_all(text) == "use <AWS_ACCESS_KEY_1> and postgres://app:<PASSWORD_1>@db/app"


def test_restore_puts_back_only_the_request_placeholders() -> None:
    mapping = {"<EMAIL_1>": "jane@example.com"}
    assert restore("Dear <EMAIL_1>, not <EMAIL_2> nor <b>", mapping) == "Dear jane@example.com, not <EMAIL_2> nor <b>"
    assert restore("no placeholders", mapping) == "no placeholders"


def stream(pieces: list[str], redactor: Redactor | None = None, **kwargs: object) -> list[str]:
    s = StreamRedactor(redactor or Redactor(), **kwargs)  # type: ignore[arg-type]
    out = [s.feed(p) for p in pieces]
    out.append(s.flush())
    return out


def test_a_card_number_split_across_chunks_is_caught_and_no_piece_of_it_leaves() -> None:
    out = stream(["My card is 4111 ", "1111 11", "11 1111", " and that is all."])
    assert "".join(out) == "My card is <CARD_1> and that is all."
    assert not any(group in piece for piece in out for group in ("4111", "1111", "11 11"))


def test_a_plain_first_word_is_sent_at_once_and_later_the_last_word_waits_for_its_end() -> None:
    s = StreamRedactor(Redactor())
    assert s.feed("Hello") == "Hello"
    assert s.feed(" there, how") == " there, "
    assert s.holding == len("how")
    assert s.feed(" are you?") == "how are "
    assert s.flush() == "you?"


def test_only_the_unfinished_tail_is_held() -> None:
    s = StreamRedactor(Redactor())
    assert s.feed("Your key is sk-pr") == "Your key is "
    assert s.feed("oj-4fX9aQ2LmN7pR3sT8vW1yZ6bC") == ""
    assert s.feed(" - keep it safe") == "<OPENAI_KEY_1> - keep it "
    assert s.flush() == "safe"


def test_an_email_split_at_the_at_sign_is_caught() -> None:
    out = stream(["write to jane.d", "oe@exam", "ple.com today"])
    assert "".join(out) == "write to <EMAIL_1> today"


def test_a_private_key_streamed_line_by_line_never_leaves() -> None:
    lines = [
        "-----BEGIN RSA PRIVATE KEY-----\n",
        "MIIEowIBAAKCAQEAx4Uq\n",
        "Zm9vYmFyYmF6cXV4\n",
        "-----END RSA PRIVATE KEY-----\n",
        "done",
    ]
    out = stream(["key:\n", *lines])
    assert "".join(out) == "key:\n<PRIVATE_KEY_1>\ndone"
    assert not any("MIIE" in piece for piece in out)


def test_a_placeholder_split_across_chunks_is_restored_whole() -> None:
    redactor = Redactor(restore=True)
    redactor.redact_all("contact jane@example.com")
    out = stream(["Sure, I will write to <EMA", "IL_1> to", "morrow."], redactor, restore=dict(redactor.mapping))
    assert "".join(out) == "Sure, I will write to jane@example.com tomorrow."


def test_new_personal_data_in_the_answer_is_redacted_while_the_request_placeholders_are_restored() -> None:
    redactor = Redactor(restore=True)
    redactor.redact_all("contact jane@example.com")
    out = stream(["<EMAIL_1> or bob@example.org"], redactor, restore=dict(redactor.mapping))
    assert "".join(out) == "jane@example.com or <EMAIL_2>"


TEXT = (
    "Hi Ann, your card " + CARD + " and IBAN DE89 3704 0044 0532 0130 00 are on file; mail jane@example.com "
    "or call +44 20 7946 0958. Key AKIAZ7QWERTY2345ABCD. Thanks, v1.2.3 on 2024-01-02."
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(TEXT) - 1), max_size=25, unique=True))
def test_any_split_of_a_stream_gives_what_redacting_it_whole_gives(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(TEXT)]
    pieces = [TEXT[a:b] for a, b in itertools.pairwise(bounds)]
    out = stream(pieces)
    assert "".join(out) == Redactor().redact(TEXT, sensitive(TEXT))
    for secret in ("4111", "3704", "jane@", "7946", "AKIA"):
        assert not any(secret in piece for piece in out)
