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
_QUESTION_WORDS = (
    "what who when where which how is are does do can name qué quién cuál cuándo dónde cómo quoi qui quel quelle "
    "quand où comment was wer wann wo wie welche welcher o que qual quem quando onde como cosa chi quale quando "
    "dove come что кто когда где какой как"
)
_QUESTION_START = frozenset(_QUESTION_WORDS.split(" "))

WINDOW = 700  # characters of instruction read in full; above it, the head and tail halves
# Where each task type starts (its usual difficulty) and how many output tokens it usually writes.
_BASE = (0.06, 0.12, 0.18, 0.12, 0.1, 0.16, 0.14, 0.42, 0.42, 0.5, 0.2, 0.44)
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


def _instruction(text: str) -> tuple[str, str]:
    """(instruction, material): the words to read for cues, and what is only counted."""
    if "```" in text:
        instruction = _FENCE.sub(" ", text)
        material = text
    else:
        instruction = text
        material = ""
    if len(instruction) > WINDOW:
        half = WINDOW // 2
        material = material or instruction
        instruction = instruction[:half] + "\n" + instruction[-half:]
    return instruction, material


class HeuristicClassifier:
    name = "heuristic"

    async def classify(self, prompt: Prompt) -> Classification:
        return self.classify_now(prompt)

    def classify_now(self, prompt: Prompt) -> Classification:
        messages = prompt.messages
        needs: set[str] = set()
        if prompt.tools:
            needs.add("tools")
        last = ""
        previous = ""
        system = ""
        turns = 0
        size = 0
        assistant_code = False
        for message in messages:
            role = message.get("role")
            content = message.get("content")
            if content is None:
                continue
            if _has_image(content):
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
        hard, easy = self._read(words, scores, 1.0)
        if _CJK.search(instruction):
            hard += self._read_cjk(instruction, scores)
        if system:
            self._read(_WORD.findall(system[:400].lower()), scores, 0.5)
        follow_up = turns > 1 and len(words) < 12
        if follow_up and previous:  # "and in French?", "make it shorter": the earlier request sets the task
            head, _ = _instruction(previous)
            extra_hard, _ = self._read(_WORD.findall(head.lower()), scores, 0.6)
            hard += extra_hard * 0.6
        if assistant_code and follow_up:
            scores[CODE] += 1.0

        # structure
        fenced = "```" in last
        body = material or last
        code_marks = body.count("{") + body.count(";") + body.count("=>") + body.count("def ") + body.count("()")
        if fenced:
            scores[CODE] += 2.5
        elif code_marks >= 6:
            scores[CODE] += 1.5
        arithmetic = len(_ARITHMETIC.findall(lowered))
        latex = lowered.count("\\frac") + lowered.count("\\int") + lowered.count("\\sum") + lowered.count("$")
        math_marks = arithmetic + latex + sum(lowered.count(c) for c in "∫√π∑≤≥∞²³")
        if math_marks:
            scores[MATH] += min(3.0, 0.8 * math_marks)
        questions = lowered.count("?") + lowered.count("\uff1f")
        first = words[0] if words else ""
        if first in _QUESTION_START and len(words) <= 25:
            scores[FACTUAL] += 1.2
        if len(words) <= 4 and not questions and not any(scores):
            scores[CHAT] += 1.0
        if len(last) > WINDOW and not fenced:
            # a long paste with a short request: look-ups and summaries rather than open questions
            scores[EXTRACT] += 0.6 if questions else 0.0
            scores[SUMMARISE] += 0.3
        task = max(range(_N), key=scores.__getitem__)
        top = scores[task]
        if top <= 0:
            task = FACTUAL if questions else CHAT
        ranked = sorted(scores, reverse=True)
        margin = (ranked[0] - ranked[1]) / (ranked[0] + 1.0) if ranked[0] > 0 else 0.0

        # complexity: where the task usually sits, then what this request says about itself
        complexity = _BASE[task]
        complexity += min(hard, 0.55) - min(easy, 0.2)
        requirements = len(_ENUMERATED.findall(instruction))
        complexity += min(0.15, 0.03 * requirements)
        spoken = len(words) if not _CJK.search(instruction[:200]) else len(instruction) // 2
        complexity += min(0.16, max(0, spoken - 25) * 0.0018)
        complexity += min(0.08, 0.02 * max(0, questions - 1))
        if turns >= 6:
            complexity += 0.04
        if task == CODE:
            complexity += self._code_adjust(scores, math_marks, code_marks, fenced, len(words))
        elif task == MATH:
            if math_marks and len(words) <= 6 and not hard:
                complexity -= 0.25  # bare arithmetic: "17 * 23 =", "what is 15% of 80"
        elif task in (SUMMARISE, EXTRACT, CLASSIFY, TRANSLATE, REWRITE) and hard < 0.2:
            complexity = min(complexity, 0.3)  # transformations of given text stay easy unless told otherwise
        if "long_context" in needs:
            complexity += 0.1
        complexity = 0.0 if complexity < 0 else 1.0 if complexity > 1 else complexity

        confidence = self._confidence(complexity, margin, top)
        output = self._output_tokens(task, complexity, len(last), prompt.max_tokens)
        return Classification(
            TASK_TYPES[task],
            round(complexity, 4),
            round(confidence, 4),
            output,
            latency_tolerance(prompt),
            frozenset(needs),
            self.name,
        )

    @staticmethod
    def _read(words: list[str], scores: list[float], scale: float) -> tuple[float, float]:
        """Adds each word's task cues to `scores`; returns the difficulty it adds and takes away."""
        cues, hard_table, easy_table = _CUES, _HARD, _EASY
        hard = easy = 0.0
        seen: set[str] = set()
        for word in words:
            if word in seen:
                continue
            seen.add(word)
            found = cues.get(word)
            if found is None and len(word) > lexicon.STEM:
                found = cues.get(word[: lexicon.STEM])
            if found is not None:
                for task, weight in found:
                    scores[task] += weight * scale
            harder = hard_table.get(word)
            if harder is None and len(word) > lexicon.STEM:
                harder = hard_table.get(word[: lexicon.STEM])
            if harder is not None:
                hard += harder
            easier = easy_table.get(word)
            if easier is not None:
                easy += easier
        return hard, easy

    @staticmethod
    def _read_cjk(text: str, scores: list[float]) -> float:
        for task, cues in _CJK_CUES:
            for cue in cues:
                if cue in text:
                    scores[task] += 2.0
        return sum(weight for cue, weight in lexicon.CJK_HARD.items() if cue in text)

    @staticmethod
    def _code_adjust(scores: list[float], math_marks: int, code_marks: int, fenced: bool, words: int) -> float:
        """A code question about a pasted snippet is easier to answer than a program to design."""
        adjust = 0.0
        if scores[REASONING] + scores[ANALYSIS] > 3:
            adjust += 0.06
        if fenced and words <= 12:
            adjust -= 0.08  # "what does this do?" over a snippet
        return adjust

    @staticmethod
    def _confidence(complexity: float, margin: float, top: float) -> float:
        """Far from a tier boundary and a clear task: confident."""
        edge = min(abs(complexity - b) for b in (1 / 3, 2 / 3))
        certainty = min(1.0, edge * 6)
        strength = min(1.0, top / 3)
        return 0.35 + 0.35 * certainty + 0.15 * margin + 0.15 * strength

    @staticmethod
    def _output_tokens(task: int, complexity: float, chars: int, max_tokens: int | None) -> int:
        expected = _OUTPUT[task] * (0.6 + complexity)
        if task in (TRANSLATE, REWRITE):
            expected = max(expected, chars / 4)
        value = int(expected)
        return min(value, max_tokens) if max_tokens else value


def classify_messages(messages: list[Mapping[str, Any]], **kwargs: Any) -> Classification:
    """A convenience for tools and tests: the heuristic's answer for plain messages."""
    return HeuristicClassifier().classify_now(Prompt(messages, **kwargs))
