"""The input firewall's detectors: prompt injection, jailbreaks, obfuscation and token bombs, over text.

`Firewall(rules)` compiles a rule set once; `scan(text)` returns the findings for one text and
`scan_request(...)` for a whole request (user turns, tool results, `n`, `max_tokens`, tools). The cost is
kept to a few tens of microseconds for a 2 KB prompt: the text is lower-cased once, one Aho-Corasick pass
finds every rule's triggers (the prefilter), and only the rules whose triggers occur run their regex.
Obfuscated text (encodings, leetspeak, hidden Unicode, homoglyphs) is decoded or normalised, gated by a
second small automaton of core attack words, and the result is checked again.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import ahocorasick

from sluicegate.guard.findings import Finding
from sluicegate.guard.firewall_rules import Rule, RuleSet

Where = Literal["user", "tool"]

# Words whose presence in a decoded or normalised text makes it worth a full second check.
_CORE_WORDS = (
    *("ignore", "disregard", "forget", "instruction", "previous", "system prompt", "jailbr", "do anything now"),
    *("developer mode", "reveal", "bypass", "override", "unrestricted", "unfiltered", "no restrictions"),
    *("pretend", "you are now", "bomb", "explosive", "meth", "napalm", "malware", "ransomware", "weapon"),
    *("poison", "password", "api key", "secret", "exfiltrat", "send ", "forever", "repeat", "refuse"),
    *("prompt", "rules", "guidelines", "dan", "hack", "kill", "drug", "disable", "filter"),
    *("ignora", "ignor", "olvida", "vergiss", "oublie", "instrucciones", "anweisungen", "consignes"),
)
_ROT13 = str.maketrans(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", "nopqrstuvwxyzabcdefghijklmNOPQRSTUVWXYZABCDEFGHIJKLM"
)
_LEET = str.maketrans(
    {
        "0": "o",
        "1": "i",
        "3": "e",
        "4": "a",
        "5": "s",
        "7": "t",
        "8": "b",
        "@": "a",
        "$": "s",
        "!": "i",
        "|": "l",
        "+": "t",
        "€": "e",
    }
)
# Confusable letters of other scripts, as the Latin letter they imitate (Cyrillic, Greek, a few others).
_HOMOGLYPHS = str.maketrans(
    "авеёкмнорстухѕіјԁԛԝɡАВЕКМНОРСТХІЈЅαβεικνορτυχΑΒΕΖΗΙΚΜΝΟΡΤΥΧıɩꮃꭰᴀʀɪɴᴏꜱ",
    "abeekmhopctyxsijdqwgABEKMHOPCTXIJSabeikvoptuxABEZHIKMNOPTYXiiwdarinos",
)
_ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff\u180e\u00ad\u2061\u2062\u2063\u2064"
_BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
_INVISIBLE = str.maketrans(dict.fromkeys(_ZERO_WIDTH + _BIDI + "".join(map(chr, range(0xFE00, 0xFE10))), None))
_SUSPICIOUS = re.compile("[" + _ZERO_WIDTH + _BIDI + "\ufe00-\ufe0f\U000e0000-\U000e007f\U000e0100-\U000e01ef]")
_TAGS = re.compile("[\U000e0000-\U000e007f]+")
_FLAG_TAGS = re.compile("\U0001f3f4[\U000e0020-\U000e007f]+")  # subdivision flags (England, Scotland, Wales)
_SUPPLEMENTARY_VS = re.compile("[\U000e0100-\U000e01ef]")
_B64 = re.compile(r"^[A-Za-z0-9+/_-]+={0,2}$")
_B32 = re.compile(r"^[A-Z2-7]+=*$")
_HEX = re.compile(r"^(?:0x)?[0-9a-fA-F]+$")
_HEX_SPACED = re.compile(r"(?:\b[0-9a-fA-F]{2}(?:[\s:,]+|$)){12,}")
_MORSE_RUN = re.compile(r"(?:[.\-·−]{1,7}(?:[ \t]+|\s*/\s*|\s*\|\s*)){8,}[.\-·−]{1,7}")
_ROLE_TURN = re.compile(r"(?m)^[ \t>*#]*(?:user|human|q|question|assistant|ai|a|answer|bot|model|chatbot)[ \t]*:")
_MORSE_CODES = (
    ".- -... -.-. -.. . ..-. --. .... .. .--- -.- .-.. -- -. --- .--. --.- .-. ... - ..- ...- .-- -..- -.-- --.. "
    "----- .---- ..--- ...-- ....- ..... -.... --... ---.. ----. .-.-.- --..-- ..--.."
)
_MORSE = dict(zip(_MORSE_CODES.split(), "abcdefghijklmnopqrstuvwxyz0123456789.,?", strict=True))
# Longer core words only: rot13 or reversed, they are found in the main pass, so plain text pays nothing more.
_ENCODED_CORE = (
    *("ignore", "disregard", "instructions", "previous", "system prompt", "jailbreak", "anything now"),
    *("developer mode", "unrestricted", "bypass", "override", "pretend", "napalm", "malware", "password"),
    *("explosive", "forget", "reveal", "guidelines", "restrictions", "forever", "repeat the", "your rules"),
    *("admin", "anything", "previous instructions", "send the"),
)
_SPACED_CORE: tuple[str, ...] = (
    *("ignore", "disregard", "forget", "instructions", "previous", "bypass", "override", "repeat", "reveal"),
    *("jailbreak", "pretend", "system", "prompt", "napalm", "password", "explain", "secret"),
)
_SPACED_HINT = "spaced"
_ROT13_HINT = "rot13"
_REVERSE_HINT = "reverse"
# The shape of a text: ASCII letters as "a", leetspeak digits and symbols as "1", separators as ".", so that
# one substring test says whether a leetspeak or letter-by-letter spelling is worth decoding.
_SHAPE = str.maketrans(
    {
        **dict.fromkeys("abcdefghijklmnopqrstuvwxyz", "a"),
        **dict.fromkeys("0123456789@$!|+", "1"),
        **dict.fromkeys("._-*", "."),
    }
)
_REACH = 500  # how far from its triggers a rule's match may reach (patterns span at most a few hundred)
_MAX_ENCODED = 65_536  # an encoded run is decoded up to this many characters (a hidden instruction is short)
_MAX_DECODED = 16_384  # and its text checked up to this many
_WINDOWS = 8  # a rule searches around at most this many of its triggers' places: bounded work on huge texts
_ATTACK_CATEGORIES = frozenset({"injection", "jailbreak", "token_bomb"})
_DISCOUNTED = frozenset({"injection", "jailbreak", "obfuscation"})


@dataclass(frozen=True, slots=True)
class _Compiled:
    rule: Rule
    regex: re.Pattern[str]


def _automaton(words: Iterable[tuple[str, object]]) -> ahocorasick.Automaton:
    automaton = ahocorasick.Automaton()
    for word, value in words:
        automaton.add_word(word, value)
    automaton.make_automaton()
    return automaton


class Firewall:
    """A compiled rule set and the checks that are code rather than patterns."""

    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules
        self.thresholds = rules.thresholds
        compiled = [_Compiled(rule, re.compile(rule.pattern)) for rule in rules.rules]
        self._compiled = compiled
        by_trigger: dict[str, list[int]] = {}
        for index, item in enumerate(compiled):
            for trigger in item.rule.triggers:
                by_trigger.setdefault(trigger, []).append(index)
        # every word the one pass looks for -> (the rules it triggers, the co-occurrence groups it is in, a hint)
        entries: dict[str, tuple[tuple[int, ...], tuple[tuple[int, int], ...], str | None]] = {
            t: (tuple(ids), (), None) for t, ids in by_trigger.items()
        }
        for word in _ENCODED_CORE:  # core words as rot13 or reversed text: a hint to decode, found in the same pass
            entries.setdefault(word.translate(_ROT13), ((), (), _ROT13_HINT))
            entries.setdefault(word[::-1], ((), (), _REVERSE_HINT))
        for word in _SPACED_CORE:  # and spelled letter by letter ("i g n o r e", "i.g.n.o.r.e")
            for separator in " ._-*":
                entries.setdefault(separator.join(word), ((), (), _SPACED_HINT))
        self._cooccurrence = rules.cooccurrence
        # per co-occurrence rule, its other groups' words -> which groups: read around each anchor word
        self._around: list[tuple[ahocorasick.Automaton | None, int]] = []
        for co in rules.cooccurrence:
            around: dict[str, tuple[int, ...]] = {}
            for g, group in enumerate(co.groups):
                if g != co.anchor:
                    for word in group:
                        around[word] = (*around.get(word, ()), g)
            self._around.append((_automaton(around.items()) if around else None, len(co.groups) - 1))
        for r, co in enumerate(rules.cooccurrence):
            for word in co.groups[co.anchor]:
                ids, markers, hint = entries.get(word, ((), (), None))
                entries[word] = (ids, (*markers, (r, co.anchor)), hint)
        self._triggers = _automaton(entries.items())
        self._core = _automaton((w, w) for w in _CORE_WORDS)
        quote = next((d for d in rules.discounts if d.id == "ctx.quote"), None)
        self._quote = (re.compile(quote.pattern), quote.window) if quote else None
        self._reported = [(re.compile(d.pattern), d.window) for d in rules.discounts if d.id != "ctx.quote"]

    # -- one text ------------------------------------------------------------------------------------------

    def scan(self, text: str, where: Where = "user") -> list[Finding]:
        """Every finding in `text`: pattern rules, then the structural checks, then decoded variants."""
        return self._scan(text, where, decode=True)

    def _scan(self, text: str, where: Where, decode: bool) -> list[Finding]:
        low = text.lower()
        findings, hints = self._rules(low, where, positional=len(low) == len(text))
        words = low.split()
        self._structure(low, words, findings)
        if decode:
            self._decoded(text, low, words, where, hints, findings)
        return findings

    def _rules(self, low: str, where: Where, positional: bool) -> tuple[list[Finding], set[str]]:
        """The pattern rules whose triggers occur, each searched near its triggers (a match contains one)."""
        spans: dict[int, list[int]] = {}  # rule -> where its triggers end (windows apart, at most _WINDOWS)
        hints: set[str] = set()
        near: dict[tuple[int, int], list[int]] = {}  # (co-occurrence rule, group) -> where its words end
        for end, (ids, markers, hint) in self._triggers.iter(low):
            if hint is not None:
                hints.add(hint)
            for index in ids:
                ends = spans.get(index)
                if ends is None:
                    spans[index] = [end]
                elif end - ends[-1] > _REACH and len(ends) < _WINDOWS:
                    ends.append(end)
            for marker in markers:
                places = near.get(marker)
                if places is None:
                    near[marker] = [end]
                elif end - places[-1] > 40 and len(places) < _WINDOWS:
                    places.append(end)
        findings: list[Finding] = []
        compiled = self._compiled
        for index in sorted(spans):
            item = compiled[index]
            rule = item.rule
            if rule.where != "any" and rule.where != where:
                continue
            regex = item.regex
            for end in spans[index]:
                match = regex.search(low, max(0, end - _REACH), end + _REACH)
                if match is not None:
                    break
            else:
                continue
            score = rule.score
            if rule.category in _DISCOUNTED:
                score *= self._discount(low, match.start(), match.end())
            start, stop = (match.start(), match.end()) if positional else (-1, -1)
            findings.append(Finding(rule.category, rule.id, round(score, 3), start, stop))
        if near:
            self._cooccurring(low, near, findings)
        return findings, hints

    def _cooccurring(self, low: str, near: dict[tuple[int, int], list[int]], findings: list[Finding]) -> None:
        """The co-occurrence rules with a word of every group within `within` characters of an anchor word
        (the automaton found the anchors; the other groups are looked for in the window around each)."""
        for (r, _), places in near.items():
            co = self._cooccurrence[r]
            within = co.within
            around, needed = self._around[r]
            for place in places:
                if around is not None:
                    found: set[int] = set()
                    for _, groups in around.iter(low, max(0, place - within), place + within):
                        found.update(groups)
                    if len(found) < needed:
                        continue
                score = co.score
                if co.category in _DISCOUNTED:
                    score *= self._discount(low, max(0, place - 40), place)
                findings.append(Finding(co.category, co.id, round(score, 3)))
                break

    def _discount(self, low: str, start: int, end: int) -> float:
        """How much of a match's score stays given its context: a quotation or reported speech around it
        (a news article, a security class) keeps `quote_factor` of it."""
        if self._quote is not None:
            regex, window = self._quote
            if regex.search(low, max(0, start - window), start) and regex.search(low, end, end + 200):
                return self.thresholds.quote_factor
        for regex, window in self._reported:
            if regex.search(low, max(0, start - window), start):
                return self.thresholds.quote_factor
        return 1.0

    def _structure(self, low: str, words: list[str], findings: list[Finding]) -> None:
        """Checks that are counts, not patterns: many-shot dialogue, repetition and padding bombs."""
        limits = self.thresholds
        turns = limits.many_shot_turns
        if low.count(":") >= 2 * turns:
            found = len(_ROLE_TURN.findall(low))
            if found >= 2 * turns:
                findings.append(Finding("jailbreak", "jb.manyshot.001", min(0.95, 0.6 + found / (20 * turns))))
        n = len(low)
        if n >= limits.repetition_min_chars and len(words) >= 50:
            sample = words[:4000]
            if len(set(sample)) / len(sample) < limits.repetition_unique_ratio:
                findings.append(Finding("token_bomb", "bomb.repetition.001", 0.9))
        if n >= limits.padding_min_chars and len(words) * 60 < n:
            head, tail = low[:2000], low[-2000:]
            if min(len(set(head)), len(set(tail))) <= limits.padding_distinct_chars:
                findings.append(Finding("token_bomb", "bomb.padding.001", 0.9))

    # -- obfuscation: decode or normalise, check again -----------------------------------------------------

    def _decoded(
        self, text: str, low: str, words: list[str], where: Where, hints: set[str], findings: list[Finding]
    ) -> None:
        variants: list[tuple[str, str, float]] = []  # (rule id, decoded text, score of the obfuscation itself)
        if not text.isascii():
            self._unicode(text, variants, findings)
        if words and max(map(len, words)) >= self.thresholds.decode_min_chars:
            self._encodings(text, variants)
        # each substring test reads the whole text: counts of one character decide which are worth it
        shape = low.translate(_SHAPE)
        digits = shape.count("1")
        if digits >= 24 and ("11 1a" in shape or "1a 11" in shape or "1a 1a" in shape):
            self._spaced_hex(text, variants)
        if (
            text.count("-") >= 6
            and ("-.-" in text or ".-." in text or "..-" in text or "-.." in text)
            and _MORSE_RUN.search(text)
        ):
            for run in _MORSE_RUN.findall(text, 0, _MAX_ENCODED):
                decoded = _morse(run)
                if decoded:
                    variants.append(("obf.morse.001", decoded, 0.0))
        if _ROT13_HINT in hints:
            variants.append(("obf.rot13.001", low.translate(_ROT13), 0.0))
        if _REVERSE_HINT in hints:
            variants.append(("obf.reverse.001", low[::-1], 0.0))
        if digits >= 2 and len(low) < 20 * len(words) and ("a1a" in shape or "1a1" in shape):
            leet = low.translate(_LEET)
            if self._new_core(leet, low):
                variants.append(("obf.leet.001", leet, 0.0))
        if _SPACED_HINT in hints:
            squeezed = _squeeze_spaced(low)
            if squeezed is not None and self._new_core(squeezed, low):
                variants.append(("obf.spacing.001", squeezed, 0.0))
        seen = {f.rule_id for f in findings}
        for rule_id, decoded, own_score in variants:
            decoded = decoded[:_MAX_DECODED]
            inner = [f for f in self._scan(decoded, where, decode=False) if f.category in _ATTACK_CATEGORIES]
            new = [f for f in inner if f.rule_id not in seen]
            score = max([own_score, *(f.score for f in inner)])
            if score >= 0.5 and (new or own_score):
                findings.append(Finding("obfuscation", rule_id, round(score, 3)))
                for finding in new:
                    findings.append(Finding(finding.category, finding.rule_id, finding.score))
                    seen.add(finding.rule_id)

    def _unicode(self, text: str, variants: list[tuple[str, str, float]], findings: list[Finding]) -> None:
        suspicious = _SUSPICIOUS.search(text) is not None
        if suspicious:
            unflagged = _FLAG_TAGS.sub("", text)
            hidden = "".join(chr(ord(c) - 0xE0000) for run in _TAGS.findall(unflagged) for c in run)
            if hidden.strip():
                variants.append(("obf.unicode.tags", hidden, 0.9))
            smuggled = _SUPPLEMENTARY_VS.findall(text)
            if len(smuggled) >= 8:
                data = bytes((ord(c) - 0xE0100 + 16) & 0xFF for c in smuggled)
                variants.append(("obf.unicode.variation_selectors", data.decode("utf-8", "replace"), 0.9))
            if "\u202e" in text or "\u202d" in text:
                findings.append(Finding("obfuscation", "obf.unicode.bidi_override", 0.6))
                variants.append(("obf.unicode.bidi", _unreverse_bidi(text), 0.0))
        normalised = unicodedata.normalize("NFKC", text.translate(_INVISIBLE) if suspicious else text).translate(
            _HOMOGLYPHS
        )
        normalised = _TAGS.sub("", normalised)
        if normalised != text:
            low = normalised.lower()
            if self._new_core(low, text.lower()):
                rule_id = "obf.unicode.invisible" if suspicious else "obf.unicode.homoglyph"
                variants.append((rule_id, normalised, 0.0))

    def _encodings(self, text: str, variants: list[tuple[str, str, float]]) -> None:
        minimum = self.thresholds.decode_min_chars
        for token in text.split():
            token = token.strip("\"'`()[]{}<>,;")
            if len(token) < minimum:
                continue
            decoded = _decode_token(token[: _MAX_ENCODED - _MAX_ENCODED % 40])
            if decoded is not None:
                rule_id, plain = decoded
                variants.append((rule_id, plain, 0.0))

    def _spaced_hex(self, text: str, variants: list[tuple[str, str, float]]) -> None:
        for run in _HEX_SPACED.findall(text, 0, _MAX_ENCODED):
            plain = _printable(bytes.fromhex("".join(ch for ch in run if ch in "0123456789abcdefABCDEF")))
            if plain:
                variants.append(("obf.hex.001", plain, 0.0))

    def _new_core(self, variant: str, original: str) -> bool:
        """Whether the variant has a core attack word the original had not (worth a second full check)."""
        words = {w for _, w in self._core.iter(variant)}
        if not words:
            return False
        return bool(words - {w for _, w in self._core.iter(original)})

    # -- a whole request -----------------------------------------------------------------------------------

    def scan_request(
        self,
        parts: Sequence[tuple[Where, str]],
        *,
        n: int | None = None,
        max_tokens: int | None = None,
        tools: int = 0,
        tools_bytes: int = 0,
    ) -> list[Finding]:
        """The findings of every text a client controls (user turns, tool results) and of the parameters
        that decide what the request can cost. Positions are dropped: they refer to one part only."""
        findings: list[Finding] = []
        for where, text in parts:
            if text:
                findings.extend(self.scan(text, where))
        findings.extend(self.check_params(n=n, max_tokens=max_tokens, tools=tools, tools_bytes=tools_bytes))
        return findings

    def check_params(self, *, n: int | None, max_tokens: int | None, tools: int, tools_bytes: int) -> list[Finding]:
        limits = self.thresholds
        findings: list[Finding] = []
        if n is not None and n > limits.max_n:
            findings.append(Finding("token_bomb", "bomb.params.n", 1.0))
        if max_tokens is not None and max_tokens > limits.max_tokens:
            findings.append(Finding("token_bomb", "bomb.params.max_tokens", 1.0))
        if tools > limits.max_tools:
            findings.append(Finding("token_bomb", "bomb.tools.count", 1.0))
        if tools_bytes > limits.max_tools_bytes:
            findings.append(Finding("token_bomb", "bomb.tools.size", 1.0))
        return findings


def _printable(data: bytes) -> str | None:
    """The bytes as text when they read as text (mostly printable UTF-8), else None."""
    try:
        plain = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not plain:
        return None
    good = sum(1 for c in plain if c.isprintable() or c in "\n\t\r")
    letters = sum(1 for c in plain if c.isalpha())
    if good / len(plain) < 0.95 or letters / len(plain) < 0.5:
        return None
    return plain


def _decode_token(token: str) -> tuple[str, str] | None:
    if _HEX.match(token) and len(token) % 2 == 0:
        digits = token[2:] if token.startswith("0x") else token
        plain = _printable(bytes.fromhex(digits))
        return ("obf.hex.001", plain) if plain else None
    if _B32.match(token) and len(token.rstrip("=")) >= 16:
        padded = token + "=" * (-len(token) % 8)
        try:
            plain = _printable(base64.b32decode(padded))
        except (binascii.Error, ValueError):
            plain = None
        if plain:
            return ("obf.base32.001", plain)
    if _B64.match(token):
        padded = token + "=" * (-len(token) % 4)
        try:
            raw = base64.urlsafe_b64decode(padded) if ("-" in token or "_" in token) else base64.b64decode(padded)
        except (binascii.Error, ValueError):
            return None
        plain = _printable(raw)
        return ("obf.base64.001", plain) if plain else None
    return None


def _morse(run: str) -> str | None:
    run = run.replace("·", ".").replace("−", "-")
    out = []
    for word in re.split(r"\s*[/|]\s*|\s{3,}", run.strip()):
        letters = [_MORSE.get(symbol) for symbol in word.split()]
        if not letters or None in letters:
            continue
        out.append("".join(letters))  # type: ignore[arg-type]
    text = " ".join(out)
    return text if len(text) >= 8 else None


def _unreverse_bidi(text: str) -> str:
    """Text after a right-to-left override is shown reversed: read it as shown."""
    head, _, tail = text.partition("\u202e")
    tail, _, rest = tail.partition("\u202c")
    return head + tail[::-1] + rest


_SPACED = re.compile(r"(?:\b\w[ ._\-*]){4,}\w\b")


def _squeeze_spaced(low: str) -> str | None:
    """Words spelled with a separator between letters ("i g n o r e", "i.g.n.o.r.e") joined back."""
    if not _SPACED.search(low):
        return None
    return _SPACED.sub(lambda m: re.sub(r"[ ._\-*]", "", m.group(0)), low)
