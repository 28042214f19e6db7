"""Redaction: personal data and secrets replaced by typed placeholders (<EMAIL_1>, <CARD_2>), numbered per
request so the same value always gets the same placeholder, and restored on the way back when asked; and
the streaming form, which holds back only the few characters that could still be the start of a match."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from sluicegate.guard import pii, secrets
from sluicegate.guard.findings import Finding

Scan = Callable[[str], list[Finding]]

PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*_[0-9]+>")


def sensitive(text: str) -> list[Finding]:
    """The secrets and personal data in `text` (secrets first: where they overlap, the secret is kept)."""
    return secrets.scan(text) + pii.scan(text)


def label(category: str) -> str:
    """The placeholder's type for a finding's category: pii_email -> EMAIL, secret_aws_access_key ->
    AWS_ACCESS_KEY."""
    for prefix in ("pii_", "secret_"):
        if category.startswith(prefix):
            category = category[len(prefix) :]
            break
    return re.sub(r"[^A-Z0-9_]", "_", category.upper()) or "REDACTED"


class Redactor:
    """The placeholders of one request: the same value gets the same placeholder in every message of the
    request, and in its response. `mapping` (placeholder -> original) is what `restore` puts back.

    `restore` says whether the response to this request gets the originals back (the policy's choice, made
    when the request was redacted)."""

    __slots__ = ("_by_value", "_counts", "mapping", "restore")

    def __init__(self, restore: bool = False) -> None:
        self.restore = restore
        self.mapping: dict[str, str] = {}
        self._by_value: dict[tuple[str, str], str] = {}
        self._counts: dict[str, int] = {}

    def placeholder(self, category: str, value: str) -> str:
        kind = label(category)
        key = (kind, value)
        found = self._by_value.get(key)
        if found is None:
            n = self._counts.get(kind, 0) + 1
            self._counts[kind] = n
            found = self._by_value[key] = f"<{kind}_{n}>"
            self.mapping[found] = value
        return found

    def redact(self, text: str, findings: Iterable[Finding]) -> str:
        """`text` with each positional finding replaced by its placeholder (overlaps: the first, then the
        longest, wins)."""
        spans = _spans(findings)
        if not spans:
            return text
        out: list[str] = []
        at = 0
        for f in spans:
            out.append(text[at : f.start])
            out.append(self.placeholder(f.category, text[f.start : f.end]))
            at = f.end
        out.append(text[at:])
        return "".join(out)

    def redact_all(self, text: str, scan: Scan = sensitive) -> str:
        return self.redact(text, scan(text))


def restore(text: str, mapping: dict[str, str]) -> str:
    """`text` with the placeholders of `mapping` put back to their originals; any other text is left as is."""
    if not mapping or "<" not in text:
        return text
    return PLACEHOLDER.sub(lambda m: mapping.get(m.group(0), m.group(0)), text)


def _spans(findings: Iterable[Finding]) -> list[Finding]:
    ordered = sorted((f for f in findings if f.positional), key=lambda f: (f.start, f.start - f.end))
    kept: list[Finding] = []
    for f in ordered:
        if kept and f.start < kept[-1].end:
            continue
        kept.append(f)
    return kept


# -- streams ---------------------------------------------------------------------------------------------

CONTEXT = 64  # characters of text already sent that a scan still sees (for look-behinds and keywords)
MAX_HOLD = 256  # the most a stream holds back for an unfinished number or token
MAX_HOLD_MATCH = 8192  # ... and for a match still growing at the end (a private key's body)

# The end of the text that could still become (part of) a match: a number being written (a card, a phone,
# an IBAN, with their separators), or the last word; a first word with digits or the symbols of addresses
# and keys in it is held too.
_TRAILING_NUMBER = re.compile(r"(?:[A-Z]{1,2} ?)?[+(]?[0-9][0-9 \-./()]*$")
_TRAILING_TOKEN = re.compile(r"\S+$")
_RISKY = re.compile(r"[0-9@_\-+/:=~%<]|.[A-Z]|\.\w")


class StreamRedactor:
    """Redacts a text that arrives in pieces. `feed` returns what can be sent now: everything except the
    end that could still be (the start of) a match, which waits for the next piece; `flush` returns the
    rest once the stream ends. Only the first word of a stream, when it is plain, is sent before the next
    piece shows where it ends, so the first token is not delayed.

    A match that starts in text already sent (a name sent before the "@" of its e-mail address came) is
    redacted from where the unsent text begins: the placeholder then stands for the whole value.
    """

    __slots__ = ("_context", "_held", "_redactor", "_restore", "_scan")

    def __init__(self, redactor: Redactor, scan: Scan = sensitive, restore: dict[str, str] | None = None) -> None:
        self._redactor = redactor
        self._scan = scan
        self._restore = restore or {}  # placeholders to put back (the request's), after redaction
        self._held = ""
        self._context = ""

    @property
    def holding(self) -> int:
        return len(self._held)

    def feed(self, piece: str) -> str:
        if not piece:
            return ""
        return self._emit(self._held + piece, final=False)

    def flush(self) -> str:
        if not self._held:
            return ""
        return self._emit(self._held, final=True)

    def _emit(self, buffer: str, final: bool) -> str:
        offset = len(self._context)
        text = self._context + buffer
        findings = _spans(self._scan(text))
        end = len(text)
        cut = end
        if not final:
            cut = offset + _open_tail(buffer, first=not self._context)
            if self._restore:  # a placeholder being written (<EMA...) waits to be put back whole
                lt = text.rfind("<", max(offset, end - 40))
                if lt >= 0 and ">" not in text[lt:]:
                    cut = min(cut, lt)
            for f in findings:
                if f.end > offset and (f.start < cut < f.end or f.end >= end):
                    cut = min(cut, max(f.start, offset))  # may still grow, or runs past the cut: wait
            held = end - cut
            limit = MAX_HOLD_MATCH if any(f.end >= end for f in findings) else MAX_HOLD
            if held > limit:
                cut = end - limit
        out: list[str] = []
        at = offset
        for f in findings:
            if f.end <= offset or f.start >= cut:
                continue
            if f.end > cut:  # the hold limit cut through it: what is sent of it is still redacted
                out.append(text[at : max(f.start, offset)])
                out.append(self._redactor.placeholder(f.category, text[f.start : f.end]))
                at = f.end
                break
            out.append(text[at : max(f.start, offset)])
            out.append(self._redactor.placeholder(f.category, text[f.start : f.end]))
            at = f.end
        if at < cut:
            out.append(text[at:cut])
        sent_end = max(cut, at)
        self._held = text[sent_end:]
        self._context = text[max(0, sent_end - CONTEXT) : sent_end]
        result = "".join(out)
        return restore(result, self._restore) if self._restore else result


def _open_tail(buffer: str, first: bool) -> int:
    """Where the end of `buffer` that could still grow into a match begins (len(buffer) if nowhere): a
    number being written, or the last word if nothing follows it yet (it could be the start of an address
    or a key). A stream's first word is sent at once when it is all there is and looks like a plain word,
    so the first token is never delayed."""
    cut = len(buffer)
    m = _TRAILING_NUMBER.search(buffer, max(0, len(buffer) - MAX_HOLD))
    if m:
        cut = m.start()
    m = _TRAILING_TOKEN.search(buffer, max(0, len(buffer) - MAX_HOLD))
    if m and m.start() < cut and not (first and m.start() == 0 and not _RISKY.search(m.group())):
        cut = m.start()
    return cut
