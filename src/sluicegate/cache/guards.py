"""What a semantic candidate must agree on with the question: a small embedding model scores "convert 10 miles
to km" and "convert 10 km to miles" alike, so similarity alone never decides. Each question is read once
into `Facts` (numbers with their units, free units, operators, comparison direction, negation, named
entities, dates, programming languages, the question's language, what goes from where to where); a
candidate whose facts differ in any of them is refused (a near-miss), however similar its embedding.

Pure functions of the text: no model, a few regular expressions, microseconds per question.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# fmt: off
_UNITS = {
    "km": "km", "kms": "km", "kilometer": "km", "kilometers": "km", "kilometre": "km", "kilometres": "km",
    "mi": "mi", "mile": "mi", "miles": "mi", "m": "m", "meter": "m", "meters": "m", "metre": "m", "metres": "m",
    "cm": "cm", "centimeter": "cm", "centimeters": "cm", "mm": "mm", "millimeter": "mm", "millimeters": "mm",
    "ft": "ft", "foot": "ft", "feet": "ft", "in": "in", "inch": "in", "inches": "in", "yd": "yd", "yard": "yd",
    "yards": "yd", "kg": "kg", "kgs": "kg", "kilogram": "kg", "kilograms": "kg", "g": "g", "gram": "g",
    "grams": "g", "lb": "lb", "lbs": "lb", "pound": "lb", "pounds": "lb", "oz": "oz", "ounce": "oz", "ounces": "oz",
    "ton": "t", "tons": "t", "tonne": "t", "tonnes": "t", "l": "l", "liter": "l", "liters": "l", "litre": "l",
    "litres": "l", "ml": "ml", "milliliter": "ml", "milliliters": "ml", "gallon": "gal", "gallons": "gal",
    "gal": "gal", "cup": "cup", "cups": "cup", "tablespoon": "tbsp", "tablespoons": "tbsp", "tbsp": "tbsp",
    "teaspoon": "tsp", "teaspoons": "tsp", "tsp": "tsp", "pint": "pt", "pints": "pt", "quart": "qt", "quarts": "qt",
    "fahrenheit": "degF", "°f": "degF", "celsius": "degC", "centigrade": "degC", "°c": "degC", "kelvin": "K",
    "second": "s", "seconds": "s", "sec": "s", "secs": "s", "minute": "min", "minutes": "min", "mins": "min",
    "hour": "h", "hours": "h", "hr": "h", "hrs": "h", "day": "day", "days": "day", "week": "week", "weeks": "week",
    "month": "month", "months": "month", "year": "year", "years": "year", "kmh": "km/h", "km/h": "km/h",
    "kph": "km/h", "mph": "mph", "kb": "kB", "mb": "MB", "gb": "GB", "tb": "TB", "kwh": "kWh", "calories": "kcal",
    "kcal": "kcal", "%": "%", "percent": "%", "per cent": "%", "$": "USD", "usd": "USD", "dollar": "USD",
    "dollars": "USD", "€": "EUR", "eur": "EUR", "euro": "EUR", "euros": "EUR", "£": "GBP", "gbp": "GBP", "¥": "JPY",
    "jpy": "JPY", "yen": "JPY", "inr": "INR", "rupee": "INR", "rupees": "INR", "cad": "CAD", "aud": "AUD",
    "chf": "CHF", "franc": "CHF", "francs": "CHF",
}
# fmt: on
_PHRASES = [  # several words that name one unit, rewritten to one token first
    (re.compile(r"\b(?:kilomet(?:er|re)s? per hour|km per hour|km ?/ ?h)\b"), " kmh "),
    (re.compile(r"\bmiles? per hour\b"), " mph "),
    (re.compile(r"\b(?:us|american) dollars?\b"), " usd "),
    (re.compile(r"\bdegrees? f\b|°\s?f\b|\bdeg f\b"), " fahrenheit "),
    (re.compile(r"\bdegrees? c\b|°\s?c\b|\bdeg c\b"), " celsius "),
    (re.compile(r"\bdegrees? (fahrenheit|celsius|kelvin)\b"), r" \1 "),
    (re.compile(r"\bper cent\b"), " percent "),
]
# fmt: off
_SYMBOL_BEFORE = {
    "$", "€", "£", "¥",
}
# fmt: on
# fmt: off
_NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
    "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "thousand": 1000, "million": 1_000_000,
    "billion": 1_000_000_000, "dozen": 12, "half": 0.5, "double": 2, "twice": 2, "first": 1, "second": 2,
    "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10,
    "squared": 2, "cubed": 3,
}
# fmt: on
# fmt: off
_ORDINALS = {
    "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth", "squared", "cubed",
}
# fmt: on
# fmt: off
_TIME = {
    "day", "days", "week", "weeks", "month", "months", "year", "years", "hour", "hours", "minute", "second", "in", "m",
}
# fmt: on
# fmt: off
_AMBIGUOUS_UNITS = {
    "in", "m", "g", "l", "mi", "second", "min", "max",
}
# fmt: on
# fmt: off
_TIME_UNITS = {
    "s", "min", "h", "day", "week", "month", "year",
}
# fmt: on
# fmt: off
_OPERATORS = {
    "plus": "+", "add": "+", "added": "+", "sum": "+", "minus": "-", "subtract": "-", "subtracted": "-",
    "times": "*", "multiply": "*", "multiplied": "*", "x": "*", "*": "*", "divided": "/", "divide": "/", "÷": "/",
    "integral": "∫", "integrate": "∫", "derivative": "d", "differentiate": "d", "root": "√", "cube": "^3",
    "square": "^2",
}
# fmt: on
# fmt: off
_MORE = {
    "over", "above", "more", "greater", "higher", "larger", "bigger", "faster", "quicker", "better", "healthier",
    "longer", "taller", "heavier", "older", "after", "exceed", "exceeds", "exceeding", "stronger", "warmer", "hotter",
    "largest", "biggest", "longest", "tallest", "highest", "fastest", "maximum", "max", "increase", "upgrade", "later",
    "richer", "deeper", "wider", "harder",
}
# fmt: on
# fmt: off
_LESS = {
    "under", "below", "less", "fewer", "lower", "smaller", "slower", "worse", "shorter", "lighter", "younger",
    "before", "cheaper", "colder", "weaker", "smallest", "shortest", "lowest", "slowest", "minimum", "min", "decrease",
    "downgrade", "earlier", "poorer", "shallower", "narrower", "easier",
}
# fmt: on
# fmt: off
_NEGATIONS = {
    "not", "no", "never", "none", "nothing", "without", "cannot", "nor", "neither", "nobody", "avoid", "avoided",
    "unsafe", "dont", "doesnt", "isnt", "arent", "wasnt", "werent", "cant", "wont", "shouldnt", "couldnt", "wouldnt",
    "didnt", "hasnt", "havent", "nicht", "kein", "keine", "nunca", "jamais", "pas", "sin", "sans", "ohne",
}
# fmt: on
# fmt: off
_MONTHS = {
    "january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november",
    "december", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
}
# fmt: on
# fmt: off
_DAYS = {
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "weekend", "weekday",
}
# fmt: on
# fmt: off
_RELATIVE = {
    "today", "tomorrow", "yesterday", "tonight", "now", "currently", "current", "next", "previous", "ago", "recent",
    "recently", "latest", "upcoming", "christmas", "easter", "thanksgiving",
}
# fmt: on
# fmt: off
_PROGRAMMING = {
    "python": "python", "py": "python", "javascript": "javascript", "js": "javascript", "node": "javascript",
    "nodejs": "javascript", "typescript": "typescript", "ts": "typescript", "java": "java", "c++": "c++",
    "cpp": "c++", "c#": "c#", "csharp": "c#", "golang": "go", "rust": "rust", "ruby": "ruby", "php": "php",
    "swift": "swift", "kotlin": "kotlin", "scala": "scala", "sql": "sql", "mysql": "sql", "postgresql": "sql",
    "postgres": "sql", "bash": "bash", "zsh": "bash", "powershell": "powershell", "haskell": "haskell",
    "perl": "perl", "lua": "lua", "dart": "dart", "elixir": "elixir", "matlab": "matlab", "css": "css",
    "html": "html", "tailwind": "css-tailwind", "django": "django", "numpy": "numpy", "pip": "python",
    "npm": "javascript", "maven": "java",
}
# fmt: on
_LANGUAGE_WORDS = {
    "en": {
        "the",
        "is",
        "what",
        "how",
        "do",
        "does",
        "i",
        "you",
        "of",
        "to",
        "in",
        "and",
        "a",
        "my",
        "can",
        "which",
        "are",
        "for",
        "why",
        "when",
        "who",
        "should",
        "with",
        "it",
        "this",
        "from",
    },
    "es": {
        "el",
        "la",
        "los",
        "las",
        "es",
        "qué",
        "que",
        "cómo",
        "como",
        "cuál",
        "de",
        "mi",
        "en",
        "y",
        "un",
        "una",
        "por",
        "para",
        "puedo",
        "dime",
        "son",
        "del",
        "se",
        "cuáles",
        "hora",
    },
    "fr": {
        "le",
        "la",
        "les",
        "est",
        "quelle",
        "quel",
        "comment",
        "de",
        "mon",
        "ma",
        "et",
        "un",
        "une",
        "pour",
        "je",
        "puis",
        "votre",
        "des",
        "du",
        "sont",
        "faire",
        "combien",
        "temps",
    },
    "de": {
        "der",
        "die",
        "das",
        "ist",
        "wie",
        "was",
        "welche",
        "mein",
        "meine",
        "und",
        "ein",
        "eine",
        "ich",
        "zu",
        "es",
        "dauert",
        "lange",
        "viele",
        "uhr",
        "spät",
        "setze",
        "zurück",
    },
    "pt": {"o", "os", "as", "é", "qual", "como", "meu", "minha", "e", "um", "uma", "para", "não", "você", "do"},
    "it": {"il", "lo", "gli", "è", "qual", "come", "mio", "mia", "e", "un", "una", "per", "che", "sono", "del"},
}
# fmt: off
_COMMON_INITIAL = {
    "what", "whats", "how", "which", "who", "whom", "whose", "where", "when", "why", "is", "are", "was", "were", "do",
    "does", "did", "can", "could", "should", "would", "will", "shall", "may", "might", "must", "have", "has", "had",
    "tell", "give", "explain", "define", "list", "name", "describe", "show", "convert", "calculate", "find",
    "translate", "multiply", "differentiate", "compute", "write", "make", "help", "please", "i", "im", "my", "we",
    "you", "your", "it", "its", "the", "a", "an", "in", "on", "at", "for", "from", "to", "by", "with", "between",
    "after", "before", "during", "if", "and", "or", "but", "so", "any", "some", "there", "this", "that", "these",
    "those", "am", "be", "let", "lets", "get", "quick", "hey", "hi", "hello", "roughly", "approximately", "about",
    "counting", "into", "good", "best", "top", "new",
}
# fmt: on
_ALIASES = [
    (re.compile(r"\b(?:the )?United States(?: of America)?\b|\bUSA\b|\bU\.S\.(?:A\.)?|\bAmerica(?:ns?)?\b"), "US"),
    (re.compile(r"\b(?:the )?United Kingdom\b|\b(?:Great )?Britain\b|\bBritish\b"), "UK"),
]
# fmt: off
_PRONOUN_I = {
    "i", "i'm", "i've", "i'd", "i'll",
}
# fmt: on
_TOKEN = re.compile(r"[$€£¥]|\d+(?:[.,]\d+)*|[^\W\d_]+(?:['\u2019][^\W\d_]+)?|[%°#+*÷^/]|c\+\+|c#", re.UNICODE)
_SENTENCE_END = re.compile(r"[.!?;:]\s+|[¿¡]")
_FROM_TO = re.compile(
    r"\bfrom\s+(?:the\s+|a\s+|an\s+|my\s+)?([^\W\d_]+)\b.*?\b(?:to|into)\s+(?:the\s+|a\s+|an\s+)?([^\W\d_]+)"
)
# fmt: off
_STRONG_ROLES = {
    "from", "into", "than", "vs", "versus", "before", "after",
}
# fmt: on
_ROLE_WORDS = _STRONG_ROLES | {
    "to",
    "without",
    "in",
    "of",
    "for",
    "by",
    "per",
    "with",
    "on",
    "at",
    "over",
    "under",
    "between",
}
_SKIP_CONTENT = _COMMON_INITIAL | {"it", "better", "more", "less", "much", "many", "really", "usually", "actually"}


# Words that exclude each other: two questions that each use one of a class, not the same one, ask different
# things (enable/disable, read/write, gold/silver...), however close their embeddings.
_CONTRASTS = [
    set(group.split())
    for group in (
        "enable disable activate deactivate",
        "on off",
        "open close",
        "start end stop begin finish started ended began",
        "read write",
        "add remove delete create destroy drop",
        "install uninstall reinstall",
        "connect disconnect",
        "buy sell rent lease",
        "import export",
        "encode decode",
        "encrypt decrypt",
        "push pull fetch merge rebase",
        "undo redo",
        "win lose",
        "good bad",
        "high low",
        "hot cold",
        "soft hard",
        "fast slow far",
        "gold silver bronze",
        "domestic international",
        "standard express overnight",
        "fridge freezer pantry",
        "key value",
        "wrote signed directed starred produced composed painted invented discovered founded",
        "wide deep long",
        "width depth height length",
        "tap bottled",
        "running stopped",
        "boil fry bake grill roast steam microwave",
        "upload download",
        "increase decrease",
        "enter raise evict",
        "approve submit reject",
        "reset enable disable change recover",
        "login logout",
        "find remove",
        "list stop kill restart scale delete",
        "history cache cookies",
        "variable constant function class",
        "husband wife",
        "buyer seller",
        "landlord tenant",
        "employer employee",
        "sunrise sunset",
        "north south east west",
        "left right",
        "up down",
        "positive negative",
        "true false",
        "min max",
        "input output",
        "best worst",
        "most least",
        "half full quarter",
        "last next previous",
        "client server",
        "front back",
        "inside outside",
        "day night",
    )
]
_SYNONYM_GROUPS = [
    set(group.split())
    for group in (
        "big large huge",
        "biggest largest",
        "fast quick rapid",
        "faster quicker",
        "tall high",
        "begin start",
        "buy purchase",
        "car automobile vehicle",
        "kid child children",
        "fridge refrigerator",
        "movie film",
        "folder directory",
        "change modify update edit",
        "remove delete erase",
        "show display list see",
        "make create build",
        "get obtain receive",
        "need require required",
        "help assist",
        "cost price",
        "cheap inexpensive",
        "answer reply",
        "ask question",
        "country nation",
        "city town",
        "author writer wrote",
        "doctor physician",
        "shop store",
        "photo picture image",
        "email mail",
        "phone telephone",
        "error bug issue problem",
        "fix solve repair resolve",
        "use utilize using",
        "money currency",
        "int integer",
        "string str",
        "dict dictionary",
        "app application",
        "pc computer",
        "turn switch",
        "allow permit let",
        "explain describe",
        "define meaning mean",
        "quit exit",
        "setup configure set",
    )
]
_SYNONYMS = {word: min(group) for group in _SYNONYM_GROUPS for word in group}
_NOT_NAMES = set(_UNITS) | _MONTHS | _DAYS | set(_NUMBER_WORDS)
_CONTRAST_OF: dict[str, tuple[int, ...]] = {}  # a word (in its synonym group's spelling) -> its classes
for _i, _words in enumerate(_CONTRASTS):
    for _word in _words:
        _key = _SYNONYMS.get(_word, _word)
        _CONTRAST_OF[_key] = (*_CONTRAST_OF.get(_key, ()), _i)


def _stem(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


@dataclass(frozen=True, slots=True)
class Facts:
    quantities: frozenset[tuple[float, str]]  # (number, the unit after it, or "")
    units: frozenset[str]  # units named without a number: the other end of a conversion
    operators: frozenset[str]
    direction: frozenset[str]  # "+" (over, more, faster...) and "-" (under, less, slower...)
    negated: bool
    entities: frozenset[str]
    dates: frozenset[str]
    programming: frozenset[str]
    language: str
    route: tuple[str, ...]  # from X to Y; the two sides of a comparison (than, before/after)
    content: tuple[str, ...] = ()  # the words that carry the question, stemmed, in order
    contrasts: frozenset[tuple[int, str]] = frozenset()  # (class, word) of each word with an opposite
    roles: tuple[tuple[str, str], ...] = ()  # (from, to, than, in, of...: the first word they govern)


def _counted(word: str) -> bool:
    """Whether a spelled number before `word` counts something ("two commits", "five kg"), unlike "one line"."""
    return word in _UNITS or (len(word) > 3 and word.endswith("s") and not word.endswith("ss"))


def _number(text: str) -> float | None:
    cleaned = text.replace(",", "") if re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?", text) else text.replace(",", ".")
    try:
        return float(cleaned)
    except ValueError:
        return None


def _language(words: list[str], text: str) -> str:
    for char in text:
        code = ord(char)
        if 0x0400 <= code <= 0x04FF:
            return "ru"
        if 0x0600 <= code <= 0x06FF:
            return "ar"
        if 0x3040 <= code <= 0x30FF:
            return "ja"
        if 0x4E00 <= code <= 0x9FFF:
            return "zh"
        if 0xAC00 <= code <= 0xD7AF:
            return "ko"
        if 0x0590 <= code <= 0x05FF:
            return "he"
        if 0x0900 <= code <= 0x097F:
            return "hi"
        if 0x0E00 <= code <= 0x0E7F:
            return "th"
    best, best_score = "en", 0
    for language, common in _LANGUAGE_WORDS.items():
        score = sum(1 for word in words if word in common)
        if score > best_score:
            best, best_score = language, score
    return best


def facts(text: str) -> Facts:
    """The facts of one question (a pure function: the same text, the same facts)."""
    raw = text.strip()
    lowered = raw.lower()
    for phrase, replacement in _PHRASES:
        lowered = phrase.sub(replacement, lowered)
    tokens = _TOKEN.findall(lowered)
    words = [t.replace("\u2019", "'") for t in tokens]
    plain = [w.replace("'", "") for w in words]

    quantities: set[tuple[float, str]] = set()
    units: set[str] = set()
    operators: set[str] = set()
    direction: set[str] = set()
    dates: set[str] = set()
    programming: set[str] = set()
    negated = False
    used_units: set[int] = set()
    for i, word in enumerate(plain):
        value: float | None = None
        if word[:1].isdigit():
            value = _number(word)
        elif word in _ORDINALS or (word in _NUMBER_WORDS and i + 1 < len(plain) and _counted(plain[i + 1])):
            value = float(_NUMBER_WORDS[word])
        elif word in ("a", "an") and i + 1 < len(plain) and plain[i + 1] in _UNITS and plain[i + 1] not in _TIME:
            value = 1.0  # "a pound", "one pound"
        if value is not None:
            unit = ""
            if i > 0 and plain[i - 1] in _SYMBOL_BEFORE:
                unit = _UNITS[plain[i - 1]]
                used_units.add(i - 1)
            elif i + 1 < len(plain) and plain[i + 1] in _UNITS and plain[i + 1] not in _SYMBOL_BEFORE | {"in", "m"}:
                unit = _UNITS[plain[i + 1]]
                used_units.add(i + 1)
            if word in ("squared", "cubed") or (i > 0 and plain[i - 1] == "^"):
                unit = "pow"
            if word == "second" and unit == "":
                unit = "ordinal"
            quantities.add((value, unit))
        if word == "x" and not (0 < i < len(plain) - 1 and plain[i - 1][:1].isdigit() and plain[i + 1][:1].isdigit()):
            pass  # a variable, not "times"
        elif word in _OPERATORS:
            operators.add(_OPERATORS[word])
        if word in _MORE:
            direction.add("+")
        elif word in _LESS:
            direction.add("-")
        if word in _NEGATIONS or word.endswith("n't") or (word.endswith("nt") and word[:-2] + "n't" in words):
            negated = True
        day = _stem(word)
        if word in _MONTHS or day in _DAYS or word in _RELATIVE:
            dates.add(word[:3] if word in _MONTHS else day)
        if word in _PROGRAMMING:
            programming.add(_PROGRAMMING[word])
    for i, word in enumerate(plain):
        if (
            i not in used_units
            and word in _UNITS
            and word not in _AMBIGUOUS_UNITS
            and not word[:1].isdigit()
            and _UNITS[word] not in _TIME_UNITS
        ):
            units.add(_UNITS[word])
    negated = negated or bool(re.search(r"n['\u2019]t\b", lowered))

    # named entities: capitalised words that do not open a sentence (or that open one but are not common)
    entities: set[str] = set()
    for alias, name in _ALIASES:
        raw = alias.sub(name, raw)
    for phrase, replacement in _PHRASES:
        raw = re.compile(phrase.pattern, re.IGNORECASE).sub(replacement, raw)
    for sentence in _SENTENCE_END.split(raw):
        for position, match in enumerate(re.finditer(r"[^\W\d_][\w'\u2019.&-]*", sentence)):
            word = match.group().rstrip(".")
            if match.start() and sentence[match.start() - 1] in "°^":
                continue
            if not word[:1].isupper():
                continue
            key = re.sub(r"['\u2019]s$", "", word.lower())
            key = _stem(key.replace("'", "").replace("\u2019", ""))
            if key in _PRONOUN_I or key in _PROGRAMMING or (word == "Go" and position > 0):
                if word == "Go":
                    programming.add("go")
                continue
            possessive = re.search(r"['\u2019]s$", word) is not None and key not in _COMMON_INITIAL
            if position == 0 and not (word.isupper() and len(word) > 1) and not possessive:
                continue  # a sentence's first word is capitalised whatever it is
            if (len(key) < 2 and word in ("I", "A")) or key in _NOT_NAMES:
                continue
            entities.add(key)

    route: list[str] = []
    found = _FROM_TO.search(lowered)
    if found:
        route += ["from", found.group(1), found.group(2)]
    roles: dict[str, str] = {}
    for i, word in enumerate(plain):
        if word in _ROLE_WORDS and word not in roles:
            following = [w for w in plain[i + 1 : i + 5] if w not in _FILLER and w not in _SKIP_CONTENT]
            if following and not following[0][:1].isdigit():
                roles[word] = _SYNONYMS.get(following[0], _stem(following[0]))
    content = tuple(_SYNONYMS.get(w, _stem(w)) for w in plain if w not in _FILLER and w not in _SKIP_CONTENT)
    contrasts = frozenset(
        (c, canonical) for w in plain for canonical in (_SYNONYMS.get(w, w),) for c in _CONTRAST_OF.get(canonical, ())
    )
    return Facts(
        frozenset(quantities),
        frozenset(units),
        frozenset(operators),
        frozenset(direction),
        negated,
        frozenset(entities),
        frozenset(dates),
        frozenset(programming),
        _language(plain, raw),
        tuple(route),
        content,
        contrasts,
        tuple(sorted(roles.items())),
    )


def agree(question: Facts, candidate: Facts) -> bool:
    """Whether a candidate answers the same question as far as its facts go."""
    return disagreement(question, candidate) is None


def disagreement(question: Facts, candidate: Facts) -> str | None:
    """What a candidate disagrees with the question on (None: nothing). Routes are compared only when both
    questions have one (a paraphrase may say "convert" without "from")."""
    if question.route and candidate.route and question.route != candidate.route:
        return "route"
    if question.roles != candidate.roles:
        theirs = dict(candidate.roles)
        same_words = sorted(question.content) == sorted(candidate.content)
        for word, what in question.roles:
            other = theirs.get(word, what)
            if other == what:
                continue
            if same_words or (word in _STRONG_ROLES and what not in _UNITS and other not in _UNITS):
                return "roles"  # "from Japan" against "from the US", "than Java" against "than Python"
    if question.contrasts != candidate.contrasts:
        mine: dict[int, set[str]] = {}
        for c, w in question.contrasts:
            mine.setdefault(c, set()).add(w)
        theirs_contrasts: dict[int, set[str]] = {}
        for c, w in candidate.contrasts:
            theirs_contrasts.setdefault(c, set()).add(w)
        if any(c in mine and mine[c] != words for c, words in theirs_contrasts.items()):
            return "contrast"
    if question.entities != candidate.entities:
        # a name one question capitalises and the other only mentions (at the start of a sentence, in lower
        # case) is the same name
        mine_only = question.entities - candidate.entities
        theirs_only = candidate.entities - question.entities
        if not (mine_only <= set(candidate.content) and theirs_only <= set(question.content)):
            return "entities"
    for name in ("quantities", "units", "operators", "direction", "negated", "dates", "programming", "language"):
        if getattr(question, name) != getattr(candidate, name):
            return name
    return None


# fmt: off
_FILLER = {
    "the", "a", "an", "is", "are", "was", "were", "do", "does", "did", "i", "me", "my", "you", "your", "can", "could",
    "please", "tell", "of", "to", "for", "it", "be", "there", "what", "whats", "which", "how", "that", "this", "in",
    "on", "at", "by", "with", "some", "any", "way", "best", "s", "'s", "should", "would", "will", "give", "show",
    "let", "know", "want", "need", "like", "just", "about", "into", "as", "so", "get", "convert", "many", "much",
    "calculate", "equal", "equals", "exactly", "approximately", "roughly",
}
# fmt: on


def normalized(text: str) -> str:
    """The question as it is embedded: lower case, units and numbers in one spelling, filler words out (a
    static embedding is a mean of its words: the words that carry the question weigh more)."""
    lowered = text.lower()
    for phrase, replacement in _PHRASES:
        lowered = phrase.sub(replacement, lowered)
    out = []
    for token in _TOKEN.findall(lowered):
        token = token.replace("\u2019", "'")
        if token.endswith("'s"):
            token = token[:-2]  # France's: France
        if token in _FILLER:
            continue
        if token[:1].isdigit():
            out.append(token)
            continue
        token = _UNITS.get(token, token)
        out.append(_SYNONYMS.get(token, _root(token)))
    return " ".join(out) or lowered


def _root(word: str) -> str:
    """A rougher stem for the embedding only: plurals, -ing and -ed off (visiting, visit; baked, bak)."""
    word = _stem(word)
    if len(word) > 5 and word.endswith("ing"):
        return word[:-3]
    if len(word) > 4 and word.endswith("ed"):
        return word[:-2]
    return word
