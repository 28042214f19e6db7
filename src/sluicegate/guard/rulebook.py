"""Pattern rules read from the YAML files shipped in `sluicegate/guard/rules/`, and the scanner that runs
them: a cheap prefilter per rule, one regular expression, an optional validator in code (a checksum), an
optional context keyword before the match; where matches overlap, the earlier rule wins."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from sluicegate.guard.findings import Finding

# A validator sees the matched value, the whole text and where the value starts; it answers how many
# characters of the value are the thing sought (0: not it; len(value): all of it).
Validator = Callable[[str, str, int], int]

CONTEXT_WINDOW = 48  # characters before a match where a rule's context keyword must appear

# A run of digits and what joins the digits of a number, a phone or an ID (a letter only between digits):
# the one pass over the whole text that the `scope: digits` rules need; everything else reads windows.
_RUN = re.compile(r"[0-9](?:[0-9 \-./():]|[A-Za-z](?=[0-9]))*")
_SPACE = re.compile(r"\s")


class RuleError(ValueError):
    """A rule file (or a rule from the configuration) that cannot be used, with the rule and the reason."""


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    category: str
    pattern: re.Pattern[str]
    score: float
    # the prefilter, any of: ("digit", ()), ("lower", keywords in the lower-cased text), ("text", literals)
    needs: tuple[tuple[str, tuple[str, ...]], ...] = ()
    needs_count: int = 1  # how many times a literal `needs` must occur
    context: re.Pattern[str] | None = None  # lower-case keywords, one of which must precede the match
    validator: Validator | None = None
    group: int = 0
    # where the pattern runs: "text" (all of it, after the prefilter), "digits" (a window around each run
    # of digits holding `digits` = (least, most) digits and, if `run_has`, one of those characters) or
    # "anchors" (a window around each occurrence of an anchor); `window` = characters before, after
    scope: str = "text"
    digits: tuple[int, int] = (1, 64)
    run_has: str = ""
    # the only characters besides digits a run may hold, as a pattern a run of them matches whole
    separators: re.Pattern[str] | None = None
    prefixes: tuple[str, ...] = ()  # "tokens" scope: how the token starts
    anchors: tuple[str, ...] = ()
    window: tuple[int, int] = (0, 0)
    dates: bool = False  # a `digits` rule that wants runs shaped like a date or a time (2024-05-01, 10:30)


def load(
    name: str,
    validators: Mapping[str, Validator],
    extra: Iterable[Mapping[str, Any]] = (),
) -> tuple[Rule, ...]:
    """The rules of the shipped file `name` (in `sluicegate/guard/rules/`), then `extra` ones (from the
    configuration, same shape), compiled and checked. A rule in `extra` with the id of a shipped rule
    replaces it; `enabled: false` removes it."""
    text = resources.files("sluicegate.guard").joinpath("rules", name).read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    contexts: dict[str, tuple[str, ...]] = {
        k: tuple(w.lower() for w in v) for k, v in (data.get("context") or {}).items()
    }
    specs: dict[str, Mapping[str, Any]] = {}
    for spec in [*data["rules"], *extra]:
        specs[str(spec.get("id"))] = spec
    return tuple(
        _compile(spec, contexts, validators, name) for spec in specs.values() if spec.get("enabled", True) is not False
    )


def _compile(
    spec: Mapping[str, Any], contexts: Mapping[str, tuple[str, ...]], validators: Mapping[str, Validator], source: str
) -> Rule:
    rule_id = spec.get("id")
    where = f"{source}: rule {rule_id!r}"
    known = {
        "id",
        "category",
        "pattern",
        "score",
        "needs",
        "context",
        "validator",
        "group",
        "enabled",
        "scope",
        "needs_count",
        "dates",
        "digits",
        "run_has",
        "separators",
        "prefixes",
        "anchors",
        "window",
    }
    unknown = set(spec) - known
    if unknown:
        raise RuleError(f"{where}: unknown keys {sorted(unknown)} (expected some of {sorted(known)})")
    if not isinstance(rule_id, str) or not rule_id:
        raise RuleError(f"{where}: `id` must be a non-empty string")
    category = spec.get("category")
    if not isinstance(category, str) or not category:
        raise RuleError(f"{where}: `category` must be a non-empty string")
    try:
        pattern = re.compile(str(spec["pattern"]))
    except KeyError:
        raise RuleError(f"{where}: `pattern` is missing") from None
    except re.error as exc:
        raise RuleError(f"{where}: `pattern` is not a valid regular expression ({exc})") from None
    score = spec.get("score", 0.9)
    if not isinstance(score, int | float) or not 0 <= score <= 1:
        raise RuleError(f"{where}: `score` must be a number from 0 to 1")
    needs_spec = spec.get("needs", ())
    needs: list[tuple[str, tuple[str, ...]]] = []
    for need in (needs_spec,) if isinstance(needs_spec, str) else needs_spec:
        need = str(need)
        if need == "digit":
            needs.append(("digit", ()))
        elif need.startswith("ctx:"):
            if need[4:] not in contexts:
                raise RuleError(f"{where}: `needs` names an unknown keyword list {need[4:]!r}")
            needs.append(("lower", contexts[need[4:]]))
        elif need.startswith("i:"):
            needs.append(("lower", (need[2:].lower(),)))
        else:
            needs.append(("text", (need,)))
    context = None
    if spec.get("context") is not None:
        if spec["context"] not in contexts:
            raise RuleError(f"{where}: `context` names an unknown keyword list {spec['context']!r}")
        context = re.compile("|".join(re.escape(k) for k in contexts[spec["context"]]))
    validator = None
    if spec.get("validator") is not None:
        validator = validators.get(spec["validator"])
        if validator is None:
            raise RuleError(f"{where}: unknown validator {spec['validator']!r} (known: {sorted(validators)})")
    group = spec.get("group", 0)
    if not isinstance(group, int) or not 0 <= group <= pattern.groups:
        raise RuleError(f"{where}: `group` must name a group of the pattern (0..{pattern.groups})")
    scope = spec.get("scope", "text")
    if scope not in ("text", "digits", "tokens", "anchors", "hex_colons"):
        raise RuleError(f"{where}: `scope` must be text, digits, tokens, anchors or hex_colons")
    prefixes = spec.get("prefixes", [])
    if scope == "tokens" and (not isinstance(prefixes, list) or not prefixes):
        raise RuleError(f"{where}: `scope: tokens` needs a list of `prefixes`")
    digits = spec.get("digits", [1, 64])
    if not (isinstance(digits, list) and len(digits) == 2 and all(isinstance(d, int) and d >= 1 for d in digits)):
        raise RuleError(f"{where}: `digits` must be [least, most], two positive integers")
    anchors_spec = spec.get("anchors", [])
    if scope == "anchors" and (not isinstance(anchors_spec, list) or not anchors_spec):
        raise RuleError(f"{where}: `scope: anchors` needs a list of `anchors`")
    window = spec.get("window", [0, 0])
    if not (isinstance(window, list) and len(window) == 2 and all(isinstance(w, int) and w >= 0 for w in window)):
        raise RuleError(f"{where}: `window` must be [before, after], two non-negative integers")
    needs_count = spec.get("needs_count", 1)
    if not isinstance(needs_count, int) or needs_count < 1:
        raise RuleError(f"{where}: `needs_count` must be a positive integer")
    separators = spec.get("separators")
    return Rule(
        id=rule_id,
        category=category,
        pattern=pattern,
        score=float(score),
        needs=tuple(needs),
        needs_count=needs_count,
        context=context,
        validator=validator,
        group=group,
        scope=scope,
        digits=(digits[0], digits[1]),
        run_has=str(spec.get("run_has", "")),
        separators=re.compile(f"[0-9{re.escape(str(separators))}]*") if separators is not None else None,
        prefixes=tuple(str(p) for p in prefixes),
        anchors=tuple(str(a).lower() for a in anchors_spec),
        window=(window[0], window[1]),
        dates=bool(spec.get("dates", False)),
    )


class RuleScanner:
    """Runs a rule set over a text and returns positional findings, earlier rules winning overlaps."""

    __slots__ = (
        "_all_by_digits",
        "_anchors",
        "_by_digits",
        "_hex",
        "_min_digits",
        "_plans",
        "_rules",
        "_spaced",
        "_spaced_groups",
        "_text",
        "_tokens",
    )

    def __init__(self, rules: Sequence[Rule]) -> None:
        self._rules = tuple(rules)
        self._text = tuple(i for i, r in enumerate(self._rules) if r.scope == "text")
        self._plans: dict[str, tuple[tuple[int, int, int, int, int], ...]] = {}
        self._tokens = tuple(i for i, r in enumerate(self._rules) if r.scope == "tokens")
        self._hex = tuple(i for i, r in enumerate(self._rules) if r.scope == "hex_colons")
        anchors: dict[str, list[int]] = {}  # each anchor, and the rules that read windows around it
        for i, r in enumerate(self._rules):
            for anchor in r.anchors if r.scope == "anchors" else ():
                anchors.setdefault(anchor, []).append(i)
        self._anchors = tuple((a, tuple(rs)) for a, rs in anchors.items())
        digit_rules = [i for i, r in enumerate(self._rules) if r.scope == "digits"]
        self._min_digits = min((self._rules[i].digits[0] for i in digit_rules), default=_NO_DIGIT_RULES)
        # `digits` rules whose format may hold spaces (see `_runs`), and for each count of digits in a piece
        # of a run, the other ones that want it
        self._spaced = tuple(i for i in digit_rules if _spaced(self._rules[i]))
        groups: dict[str | None, list[int]] = {}
        for i in self._spaced:
            allowed = self._rules[i].separators
            groups.setdefault(None if allowed is None else allowed.pattern, []).append(i)
        self._spaced_groups = tuple((self._rules[group[0]].separators, tuple(group)) for group in groups.values())
        self._by_digits: list[tuple[int, ...]] = [
            tuple(
                i
                for i in digit_rules
                if i not in self._spaced and self._rules[i].digits[0] <= d <= self._rules[i].digits[1]
            )
            for d in range(_MAX_RUN_DIGITS + 1)
        ]
        self._all_by_digits: list[tuple[int, ...]] = [
            tuple(i for i in digit_rules if self._rules[i].digits[0] <= d <= self._rules[i].digits[1])
            for d in range(_MAX_RUN_DIGITS + 1)
        ]

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self._rules

    def scan(self, text: str) -> list[Finding]:
        if not text:
            return []
        # which rules can apply: a few passes over the text decide it, then only those rules run, in order
        lowered = text.lower()
        same_length = len(lowered) == len(text)  # lower-casing changed no position (a few Unicode letters do)
        runs = self._runs(text) if self._min_digits < _NO_DIGIT_RULES else {}
        tokens = _tokens(text) if self._tokens else []
        anchored: dict[str, list[int]] = {}
        applies = set(runs)
        for i in self._text:
            if _needed(self._rules[i], text, lowered):
                applies.add(i)
        if tokens:
            for i in self._tokens:
                prefixes = self._rules[i].prefixes
                if any(p in token for _, _, token in tokens for p in prefixes):
                    applies.add(i)
        for anchor, rules in self._anchors:
            if anchor in lowered:
                applies.update(rules)
        hex_colons = _hex_colons(text) if self._hex else []
        if hex_colons:
            applies.update(self._hex)
        found: list[Finding] = []
        covered = bytearray(len(text))  # 1 where a finding already is
        for index in sorted(applies):
            rule = self._rules[index]
            if rule.needs and not _needed(rule, text, lowered):
                continue
            if rule.scope == "text":
                self._apply(rule, text, 0, len(text), found, covered)
                continue
            if rule.scope == "digits":
                # a run that an earlier rule's finding already covers cannot hold another match
                windows = _merge((ws, we) for ws, we, rs, re_ in runs[index] if covered.find(0, rs, re_) >= 0)
                if rule.context is not None:  # a window without the keyword cannot match: skip the pattern
                    windows = [(ws, we) for ws, we in windows if _mentions(text, ws, we, rule.context)]
            elif rule.scope == "tokens":
                before, after = rule.window
                windows = _merge(
                    (s - before, e + after) for s, e, token in tokens if any(p in token for p in rule.prefixes)
                )
            elif rule.scope == "hex_colons":
                before, after = rule.window
                windows = _merge((i - before, i + after) for i in hex_colons)
            elif same_length:
                windows = _merge(_anchor_windows(lowered, rule, anchored))
            else:  # positions in the lower-cased text differ from the text's: read it all
                windows = [(0, len(text))]
            n = len(text)
            for ws, we in windows:
                ws = max(0, ws)
                if we >= n:
                    we = n
                else:  # end the window at a space, so no match is cut short by its end
                    space = _SPACE.search(text, we)
                    we = space.start() if space else n
                self._apply(rule, text, ws, we, found, covered)
        if len(found) > 1:
            found.sort(key=lambda f: f.start)
        return found

    def _runs(self, text: str) -> dict[int, list[tuple[int, int, int, int]]]:
        """One pass over the text for every `digits` rule: the windows around the runs each rule wants
        (rule -> window start, end; run start, end). What a run offers which rule depends only on its shape
        (digits as 9), so it is worked out once per shape (`_plan`) and remembered."""
        wanted: dict[int, list[tuple[int, int, int, int]]] = {}
        least = self._min_digits
        plans = self._plans
        for m in _RUN.finditer(text):
            s, e = m.span()
            if e - s < least:
                continue
            shape = m.group().rstrip(_SEPARATORS).translate(_SHAPE)
            plan = plans.get(shape)
            if plan is None:
                plan = self._plan(shape)
                if len(plans) < _MAX_PLANS:
                    plans[shape] = plan
            for i, ws, we, rs, re_ in plan:
                wanted.setdefault(i, []).append((s + ws, s + we, s + rs, s + re_))
        return wanted

    def _plan(self, run: str) -> tuple[tuple[int, int, int, int, int], ...]:
        """For a run's shape: each rule it is offered to, with the window and the part of the run, relative
        to the run's start.

        A run may join several numbers with spaces ("2024-05-01 10.0.0.1"): a rule whose format has no
        space (its `separators` hold none) is offered each space-separated piece and gated on its digits and
        characters; a rule whose format has spaces is offered each stretch of pieces made of its characters
        that holds at least its least number of digits."""
        plan: list[tuple[int, int, int, int, int]] = []
        least = self._min_digits
        rules = self._rules
        digits = run.count("9")
        if digits < least:
            return ()
        if " " not in run:  # one piece: every rule is gated on it alike
            dated = _DATE_SHAPE.fullmatch(run) is not None
            for i in self._all_by_digits[min(digits, _MAX_RUN_DIGITS)]:
                rule = rules[i]
                if dated and not rule.dates:
                    continue
                if rule.separators is not None and not rule.separators.fullmatch(run):
                    continue
                if rule.run_has and not any(c in run for c in rule.run_has):
                    continue
                before, after = rule.window
                plan.append((i, -before, len(run) + after, 0, len(run)))
            return tuple(plan)
        pieces = run.split(" ")
        piece_digits = [piece.count("9") for piece in pieces]
        for allowed, group in self._spaced_groups:  # rules with the same characters share their segments
            for seg_start, seg_end, n in _segments(pieces, piece_digits, 0, allowed):
                dated = _DATE_SHAPE.fullmatch(run, seg_start, seg_end) is not None
                for i in group:
                    rule = rules[i]
                    if n < rule.digits[0] or (dated and not rule.dates):
                        continue
                    if rule.run_has and not any(c in run[seg_start:seg_end] for c in rule.run_has):
                        continue
                    before, after = rule.window
                    plan.append((i, seg_start - before, seg_end + after, seg_start, seg_end))
        offset = 0
        for piece, n in zip(pieces, piece_digits, strict=True):
            if n >= least:
                dated = _DATE_SHAPE.fullmatch(piece) is not None
                for i in self._by_digits[min(n, _MAX_RUN_DIGITS)]:
                    rule = rules[i]
                    if dated and not rule.dates:
                        continue
                    if rule.separators is not None and not rule.separators.fullmatch(piece):
                        continue
                    if rule.run_has and not any(c in piece for c in rule.run_has):
                        continue
                    before, after = rule.window
                    end = offset + len(piece)
                    plan.append((i, offset - before, end + after, offset, end))
            offset += len(piece) + 1
        return tuple(plan)

    @staticmethod
    def _apply(rule: Rule, text: str, pos: int, endpos: int, found: list[Finding], covered: bytearray) -> None:
        """The rule's matches in text[pos:endpos] that pass its checks, added to `found`. A match its checks
        refuse is tried again one character later ("0 4111 1111 1111 1111": not a card from the 0, a card
        from the 4)."""
        pattern = rule.pattern
        retries = _MAX_RETRIES
        while pos < endpos:
            m = pattern.search(text, pos, endpos)
            if m is None:
                return
            start, end = m.span(rule.group)
            length = _accepted(rule, text, start, end, found, covered)
            if length:
                end = start + length
                found.append(Finding(rule.category, rule.id, rule.score, start, end))
                covered[start:end] = b"\x01" * (end - start)
                pos = max(m.end(), m.start() + 1)
            elif retries:
                retries -= 1
                pos = m.start() + 1
            else:  # a text made to be refused at every character ("1 1 1 1 ..."): the work stays linear
                pos = max(m.end(), m.start() + 1)


def _accepted(rule: Rule, text: str, start: int, end: int, found: list[Finding], covered: bytearray) -> int:
    """How many characters from `start` the finding covers (0: the match is refused)."""
    if start < 0 or start == end:
        return 0
    if found and covered.find(1, start, end) >= 0:  # overlaps an earlier rule's finding
        return 0
    if rule.context is not None and rule.context.search(text[max(0, start - CONTEXT_WINDOW) : start].lower()) is None:
        return 0
    if rule.validator is None:
        return end - start
    return max(0, rule.validator(text[start:end], text, start))


def _mentions(text: str, start: int, end: int, keywords: re.Pattern[str]) -> bool:
    return keywords.search(text[max(0, start - CONTEXT_WINDOW) : end].lower()) is not None


_SEPARATORS = " -./():"
_MAX_RETRIES = 32  # matches refused and tried again one character later, per rule and window
_NO_DIGIT_RULES = 1 << 30
_MAX_RUN_DIGITS = 64  # a run with more digits is treated as having this many
# Shapes of dates and times (2024-05-01, 01.05.2024, 10:30:00, 2024-05-01 10:30): only rules with
# `dates: true` (a date of birth) are offered them.
_DATE_SHAPE = re.compile(
    r"(?:9{4}[-/.]9{1,2}[-/.]9{1,2}|9{1,2}[-/.]9{1,2}[-/.]9{2,4})(?: 9{1,2}:99(?::99)?)?|9{1,2}:99(?::99)?"
)
_MAX_PLANS = 4096  # run shapes remembered per scanner
# A run's shape: its digits as 9, lower-case letters as "a" except "x" (an extension), the rest as they are.
_SHAPE = {c: (57 if 48 <= c <= 57 else 97 if 97 <= c <= 122 and c != 120 else c) for c in range(128)}


# Credentials are long runs of these characters: a translation to one class character finds them with a
# string search instead of a regular expression (the text is read once, in C).
_TOKEN_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-+/.~"
_TOKEN_CLASS = bytes(0x61 if chr(b) in _TOKEN_CHARS else 0x20 for b in range(256))
TOKEN_LENGTH = 20  # the shortest credential a `tokens` rule looks for
_TOKEN_RUN = b"a" * TOKEN_LENGTH


def _tokens(text: str) -> list[tuple[int, int, str]]:
    """The runs of at least TOKEN_LENGTH credential characters: start, end, the token."""
    classes = text.encode("latin-1", "replace").translate(_TOKEN_CLASS)  # one byte per character
    found = []
    i = classes.find(_TOKEN_RUN)
    while i >= 0:
        j = classes.find(b" ", i + TOKEN_LENGTH)
        if j < 0:
            j = len(classes)
        found.append((i, j, text[i:j]))
        i = classes.find(_TOKEN_RUN, j)
    return found


def _segments(
    pieces: list[str], digits: list[int], start: int, allowed: re.Pattern[str] | None
) -> list[tuple[int, int, int]]:
    """The stretches of consecutive space-separated pieces of a run made only of a rule's characters
    (`allowed` matches them whole): start, end, and how many digits each holds."""
    found = []
    seg_start = -1
    count = 0
    offset = start
    for piece, n in zip(pieces, digits, strict=True):
        if allowed is None or allowed.fullmatch(piece):
            if seg_start < 0:
                seg_start, count = offset, 0
            count += n
        elif seg_start >= 0:
            found.append((seg_start, offset - 1, count))
            seg_start = -1
        offset += len(piece) + 1
    if seg_start >= 0:
        found.append((seg_start, offset - 1, count))
    return found


def _spaced(rule: Rule) -> bool:
    return rule.separators is None or rule.separators.fullmatch(" ") is not None


# Hex digits and colons as classes: runs of colon-separated hex groups (an IPv6 address) found with a
# string search.
_HEX_CLASS = bytes(0x68 if chr(c) in "0123456789abcdefABCDEF" else 0x3A if c == 0x3A else 0x20 for c in range(256))
_HEX_GROUPS = re.compile(rb"(?:h{1,4}:){7}h{1,4}")


def _hex_colons(text: str) -> list[int]:
    """Where seven colons join hex groups (the full form of an IPv6 address), if the text has that many."""
    if text.count(":") < 7:
        return []
    classes = text.encode("latin-1", "replace").translate(_HEX_CLASS)
    places = []
    i = classes.find(b"h:h")
    while i >= 0:
        m = _HEX_GROUPS.match(classes, max(0, i - 3))
        if m is None:
            m = _HEX_GROUPS.search(classes, i, i + 45)
        if m is not None:
            places.append(m.start())
            i = classes.find(b"h:h", m.end())
        else:
            i = classes.find(b"h:h", i + 3)
    return places


def _needed(rule: Rule, text: str, lowered: str) -> bool:
    for kind, words in rule.needs:
        if kind == "digit":
            if _RUN.search(text) is not None:
                return True
        elif rule.needs_count > 1:
            source = lowered if kind == "lower" else text
            if any(source.count(k) >= rule.needs_count for k in words):
                return True
        elif any(k in (lowered if kind == "lower" else text) for k in words):
            return True
    return False


def _anchor_windows(lowered: str, rule: Rule, anchored: dict[str, list[int]]) -> Iterable[tuple[int, int]]:
    before, after = rule.window
    for anchor in rule.anchors:
        places = anchored.get(anchor)
        if places is None:
            places = anchored[anchor] = []
            i = lowered.find(anchor)
            while i >= 0:
                places.append(i)
                i = lowered.find(anchor, i + len(anchor))
        for i in places:
            yield i - before, i + len(anchor) + after


def _merge(windows: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for s, e in sorted(windows):
        if merged and s <= merged[-1][1]:
            if e > merged[-1][1]:
                merged[-1] = (merged[-1][0], e)
        else:
            merged.append((s, e))
    return merged
