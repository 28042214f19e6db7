"""The heuristic classifier: task type and complexity from the structure of the conversation, in process.

What it reads, cheapest first:
- the last user message's *instruction*: the whole message when short, else its first and last few hundred
  characters with code blocks taken out. Pasted material (an invoice, a log, an article) is in the middle and
  does not make a request hard: length is not difficulty. The material is only counted (code-like and
  maths-like characters), with `str.count`, which costs little whatever its size;
- cue words of each task type and of difficulty, in several languages (`lexicon.py`), looked up by exact
  word and by a six-letter stem; Chinese, Japanese and Korean cues as substrings;
- structure: code blocks, equations, how many questions and numbered requirements the instruction holds,
  how deep the conversation is, a system prompt that sets the task;
- the request itself: tools, images, a very long prompt (needs), streaming, the latency header and the
  key's priority (latency tolerance).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sluicegate.classify import lexicon
from sluicegate.classify.classification import (
    LONG_CONTEXT_TOKENS,
    Classification,
    Prompt,
    latency_tolerance,
)
from sluicegate.classify.config import TASK_TYPES

_TASK_INDEX = {task: i for i, task in enumerate(TASK_TYPES)}
_N = len(TASK_TYPES)
CHAT, FACTUAL, SUMMARISE, EXTRACT, CLASSIFY, TRANSLATE, REWRITE, CODE, MATH, REASONING, CREATIVE, ANALYSIS = range(_N)


def _cue_table() -> dict[str, tuple[tuple[int, float], ...]]:
    table: dict[str, list[tuple[int, float]]] = {}
    for task, words in lexicon.TASK_WORDS.items():
        for word, weight in lexicon.weighted(words).items():
            table.setdefault(word, []).append((_TASK_INDEX[task], weight))
    return {word: tuple(cues) for word, cues in table.items()}


_CUES = _cue_table()
_HARD = lexicon.weighted(lexicon.HARD_WORDS)
_EASY = lexicon.weighted(lexicon.EASY_WORDS)
_CJK_CUES = tuple((_TASK_INDEX[task], words) for task, words in lexicon.CJK_TASKS.items())

_WORD = re.compile(r"[^\W\d_]+")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")
_FENCE = re.compile(r"```.*?(?:```|$)", re.S)
_ENUMERATED = re.compile(r"(?m)^\s*(?:\d+[.)]|[-*•])\s+\S")
_ARITHMETIC = re.compile("\\d\\s*[-+*/^\u00d7\u00f7=<>]\\s*[\\d(xyzn]")
_QUOTED = re.compile('"[^"]{40,}"|\u201c[^\u201d]{40,}\u201d|\u00ab[^\u00bb]{40,}\u00bb|\u300c[^\u300d]{20,}\u300d')
_DIGIT = re.compile(r"\d")
_MATH_SYMBOL = re.compile("\\\\frac|\\\\int|[%\\^\u222b\u221a\u03c0\u2211\u2264\u2265\u221e\u00b2\u00b3]")
_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")
_QUESTION_WORDS = (
    "what who when where which how is are does do can name qué quién cuál cuándo dónde cómo quoi qui quel quelle "
    "quand où comment was wer wann wo wie welche welcher o que qual quem quando onde como cosa chi quale quando "
    "dove come что кто когда где какой как cuánto cuánta cuántos combien quanto quanta сколько"
)
_QUESTION_START = frozenset(_QUESTION_WORDS.split(" "))

WINDOW = 500  # a message this long is read in full; a longer one, its first and last lines
LINE = 300  # an end line longer than this is material, unless it is a question no longer than LINE
SHORT = 160
CODE_SAMPLE = 800
HEAD = 160
# Where each task type starts (its usual difficulty) and how many output tokens it usually writes.
_BASE = (0.06, 0.1, 0.16, 0.12, 0.1, 0.14, 0.14, 0.26, 0.38, 0.38, 0.18, 0.4)
_OUTPUT = (60, 80, 200, 120, 10, 300, 250, 500, 400, 500, 350, 600)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _has_image(content: Any) -> bool:
    return isinstance(content, list) and any(
        isinstance(p, dict) and p.get("type") in ("image_url", "input_image", "image") for p in content
    )


def _is_request(line: str, longest: int = SHORT) -> bool:
    """Whether an end line of a long message reads as the request rather than pasted material."""
    if len(line) > longest and not (len(line) <= LINE and "?" in line[-SHORT:]):
        return False
    separators = line.count(",") + line.count("|") + line.count("\t")
    return separators < 3 or line.count(" ") >= 2 * separators  # not a row of data


def _instruction(text: str) -> tuple[str, str]:
    """(instruction, material): the words to read for cues, and what is only counted.

    A short message of one or two lines is all instruction. In a longer one the request is almost always its
    first or its last line (a question under a pasted invoice, "Summarise this:" above an article): an end
    that is short (or a question) is read, the rest is material. Code blocks are material.
    """
    material = ""
    if "```" in text:
        material = text
        text = _FENCE.sub(" ", text)
    if '"' in text or "\u201c" in text or "\u00ab" in text or "\u300c" in text:
        quoted = _QUOTED.sub(" ", text)  # a quoted passage is what to work on, not what to do
        if len(quoted) < len(text):
            material = material or text
            text = quoted
    stripped = text.strip()
    if len(stripped) <= WINDOW and stripped.count("\n") < 2:
        return stripped, material
    material = material or text
    first, _, rest = stripped.partition("\n")
    last = rest.rstrip().rpartition("\n")[2] if rest else ""
    ends = [first] if _is_request(first, LINE) else []
    if last and _is_request(last):
        opened = first.rstrip().endswith(":") or ("?" in first and "?" not in last)  # "Summarise this:", "What...?"
        if not (ends and opened):
            ends.append(last)
    if not ends:  # two long ends: read the start of each
        return first[:HEAD] + "\n" + (last or stripped)[-HEAD:], material
    return "\n".join(ends), material


class HeuristicClassifier:
    name = "heuristic"

    async def classify(self, prompt: Prompt) -> Classification:
        return self.classify_now(prompt)

    def classify_now(self, prompt: Prompt) -> Classification:
        needs: set[str] = set()
        if prompt.tools:
            needs.add("tools")
        last = previous = system = ""
        turns = size = 0
        assistant_code = False
        for message in prompt.messages:
            role = message.get("role")
            content = message.get("content")
            if content is None:
                continue
            if not isinstance(content, str) and _has_image(content):
                needs.add("vision")
            text = _text(content)
            size += len(text)
            if role == "user":
                turns += 1
                previous, last = last, text
            elif role == "system" or role == "developer":
                system = text
            elif role == "assistant" and "```" in text:
                assistant_code = True
        if size // 4 > LONG_CONTEXT_TOKENS:
            needs.add("long_context")

        scores = [0.0] * _N
        instruction, material = _instruction(last)
        lowered = instruction.lower()
        words = _WORD.findall(lowered)
        cjk = _CJK.search(instruction) is not None
        unique = set(words)
        hard, easy = _read(unique, scores, 1.0)
        for phrase, task, weight, difficulty in _phrases(unique):
            if phrase in lowered:
                if task:
                    scores[task] += weight
                if difficulty > 0:
                    hard += difficulty
                else:
                    easy -= difficulty
        if cjk:
            hard += _read_cjk(instruction, scores)
        if system:
            _read(set(_WORD.findall(system[:300].lower())), scores, 0.2)
        length = len(instruction) // 2 if cjk else len(words)  # CJK: about a word every two characters
        follow_up = turns > 1 and length < 12
        if follow_up and previous:  # "and in French?", "make it shorter": the earlier request sets the task
            head, _ = _instruction(previous)
            extra, _ = _read(set(_WORD.findall(head.lower())), scores, 0.6)
            hard += extra * 0.6
            if assistant_code:
                scores[CODE] += 1.0
        if length > 10:
            scores[CHAT] *= 0.2  # a greeting in front of a request does not make it chat

        # structure
        fenced = "```" in last
        body = material[:CODE_SAMPLE] if material else instruction  # a sample tells code from prose
        code_marks = body.count("{") + body.count(";") + body.count("=>") + body.count("def ") + body.count("()")
        if fenced:
            scores[CODE] += 2.5
        elif code_marks >= 6:
            scores[CODE] += 1.5
        math_marks = len(_MATH_SYMBOL.findall(lowered))
        if _DIGIT.search(lowered) is not None:
            math_marks += len(_ARITHMETIC.findall(lowered))
            numbers = len(_NUMBER.findall(lowered))
            if numbers >= 3:  # a word problem: several quantities in the request itself
                scores[MATH] += 0.5 * min(numbers, 6)
        if math_marks:
            scores[MATH] += min(3.0, 1.5 * math_marks)
        questions = lowered.count("?") + lowered.count("\uff1f")
        first = words[0] if words else ""
        if first in _QUESTION_START and length <= 20:
            scores[FACTUAL] += 1.2
        if length <= 4 and not questions and not any(scores):
            scores[CHAT] += 1.0
        if material and not fenced:
            # a long paste with a short request: look-ups and summaries rather than open questions
            scores[EXTRACT] += 0.8 if questions else 0.0
            scores[SUMMARISE] += 0.3
        task = max(range(_N), key=scores.__getitem__)
        top = scores[task]
        if top <= 0 or (top < 1.2 and task in _DEMANDING):  # weak evidence of a hard task: a plain question
            task = FACTUAL if questions or top > 0 else CHAT
        ranked = sorted(scores, reverse=True)
        margin = (ranked[0] - ranked[1]) / (ranked[0] + 1.0) if ranked[0] > 0 else 0.0

        # complexity: where the task usually sits, then what this request says about itself
        complexity = _BASE[task] + min(hard, 0.6) - min(easy, 0.2)
        clauses = lowered.count(",") + lowered.count(" and ") + lowered.count(" with ") + lowered.count(";")
        complexity += min(0.12, 0.025 * clauses)
        if "\n" in instruction:
            complexity += min(0.12, 0.03 * len(_ENUMERATED.findall(instruction)))
        complexity += min(0.3, max(0, length - 12) * 0.01)  # a long request asks for several things
        complexity += min(0.08, 0.03 * max(0, questions - 1))
        if turns >= 6:
            complexity += 0.04
        if task == CODE:
            if fenced and length <= 6 and not hard:
                complexity -= 0.06  # "what does this do?" over a snippet
            elif fenced:
                complexity += 0.1  # fix, refactor, test or speed up the pasted code
        elif task == MATH:
            if hard < 0.1 and length <= 14 and scores[MATH] - min(3.0, 0.8 * math_marks) < 3.1:
                complexity -= 0.25  # arithmetic, percentages, conversions
        elif task == CREATIVE:
            complexity += _long_piece(lowered)
        elif task in _TRANSFORMS and hard < 0.15 and length < 22:
            complexity = min(complexity, 0.3)  # transformations of given text stay easy unless told otherwise
        if "long_context" in needs:
            complexity += 0.1
        complexity = 0.0 if complexity < 0 else 1.0 if complexity > 1 else complexity

        confidence = _confidence(complexity, margin, top)
        output = _output_tokens(task, complexity, len(last), prompt.max_tokens)
        return Classification(
            TASK_TYPES[task],
            round(complexity, 4),
            round(confidence, 4),
            output,
            latency_tolerance(prompt),
            frozenset(needs),
            self.name,
        )


_PHRASES = tuple((text, _TASK_INDEX[task] if task else None, weight, d) for text, task, weight, d in lexicon.PHRASES)


def _by_first_word() -> dict[str, list[tuple[str, int | None, float, float]]]:
    table: dict[str, list[tuple[str, int | None, float, float]]] = {}
    for phrase in _PHRASES:
        table.setdefault(_WORD.findall(phrase[0])[0], []).append(phrase)
    return table


_PHRASE_STARTS = _by_first_word()
_DEMANDING = frozenset((CODE, MATH, REASONING, ANALYSIS))
_TRANSFORMS = frozenset((SUMMARISE, EXTRACT, CLASSIFY, TRANSLATE, REWRITE))
_PIECE = re.compile(r"(\d[\d,.]*)\s*-?\s*(?:words?|palabras|mots|w\u00f6rter|parole|palavras|\u5b57)")


def _phrases(words: set[str]) -> list[tuple[str, int | None, float, float]]:
    """The phrases whose first word the instruction has (the only ones it can contain)."""
    found: list[tuple[str, int | None, float, float]] = []
    for word in words & _PHRASE_STARTS.keys():
        found += _PHRASE_STARTS[word]
    return found


def _read(words: set[str], scores: list[float], scale: float) -> tuple[float, float]:
    """Adds each word's task cues to `scores`; returns the difficulty it adds and takes away."""
    cues, hard_table, easy_table, stem = _CUES, _HARD, _EASY, lexicon.STEM
    hard = easy = 0.0
    for word in words:
        found = cues.get(word)
        if found is None and len(word) > stem:
            found = cues.get(word[:stem])
        if found is not None:
            for task, weight in found:
                scores[task] += weight * scale
        harder = hard_table.get(word)
        if harder is None and len(word) > stem:
            harder = hard_table.get(word[:stem])
        if harder is not None:
            hard += harder
        easier = easy_table.get(word)
        if easier is not None:
            easy += easier
    return hard, easy


def _read_cjk(text: str, scores: list[float]) -> float:
    for task, cues in _CJK_CUES:
        for cue in cues:
            if cue in text:
                scores[task] += 2.0
    return sum(weight for cue, weight in lexicon.CJK_HARD.items() if cue in text)


def _long_piece(lowered: str) -> float:
    """A creative piece asked for at length ("a 600-word post", "2,000 words") takes a stronger model."""
    match = _PIECE.search(lowered)
    if match is None:
        return 0.0
    try:
        count = float(match.group(1).replace(",", "").rstrip("."))
    except ValueError:
        return 0.0
    return 0.45 if count >= 1500 else 0.2 if count >= 300 else 0.0


def _confidence(complexity: float, margin: float, top: float) -> float:
    """Far from a tier boundary and a clear task: confident."""
    edge = min(abs(complexity - b) for b in (1 / 3, 2 / 3))
    certainty = min(1.0, edge * 6)
    strength = min(1.0, top / 3)
    return 0.35 + 0.35 * certainty + 0.15 * margin + 0.15 * strength


def _output_tokens(task: int, complexity: float, chars: int, max_tokens: int | None) -> int:
    expected = _OUTPUT[task] * (0.6 + complexity)
    if task in (TRANSLATE, REWRITE):
        expected = max(expected, chars / 4)
    value = int(expected)
    return min(value, max_tokens) if max_tokens else value


def classify_messages(messages: list[Mapping[str, Any]], **kwargs: Any) -> Classification:
    """A convenience for tools and tests: the heuristic's answer for plain messages."""
    return HeuristicClassifier().classify_now(Prompt(messages, **kwargs))
