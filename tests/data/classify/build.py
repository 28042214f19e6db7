"""Builds `prompts.jsonl`, the labelled set for the classifiers, from the hand-written templates in
`seeds_*.txt` (one family per line: the cheapest tier that answers it acceptably, its task type, the prompt).

Each family is filled several times (different slot values and pasted material, sometimes behind a system
prompt or earlier turns of a conversation). Families, not prompts, are split into train and test, so the test
split holds only phrasings the classifiers never saw. Deterministic: `python tests/data/classify/build.py`.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

HERE = Path(__file__).parent
VARIANTS = 6
TEST_SHARE = 0.3

SLOTS: dict[str, list[str]] = {
    "topic": [
        "coffee",
        "remote work",
        "cats",
        "autumn",
        "the ocean",
        "spreadsheets",
        "cycling",
        "gardening",
        "cloud costs",
        "customer onboarding",
        "password hygiene",
        "Monday mornings",
    ],
    "country": ["Australia", "Canada", "Kenya", "Peru", "Norway", "Vietnam", "Portugal", "Chile"],
    "book": ["Pride and Prejudice", "One Hundred Years of Solitude", "The Trial", "Beloved", "Dune"],
    "event": [
        "the fall of the Berlin Wall",
        "the first Moon landing",
        "the signing of the Magna Carta",
        "the founding of the United Nations",
    ],
    "unit_big": ["seconds", "minutes", "centimeters", "ounces"],
    "unit_small": ["day", "week", "meter", "pound"],
    "acronym": ["NASA", "GDPR", "HTTP", "SaaS", "KPI", "ROI"],
    "city": ["Lisbon", "Denver", "Osaka", "Nairobi", "Toronto", "Madrid", "Lyon", "Munich"],
    "word": ["ephemeral", "ubiquitous", "latency", "idempotent", "amortize"],
    "service": ["PostgreSQL", "Redis", "SSH", "HTTPS", "MySQL"],
    "product": ["Acme Cloud", "PixelNote", "ShipFast", "BrightDesk", "Ledgerly", "our mobile app"],
    "n": ["3", "4", "5", "6", "8", "10", "12"],
    "name": ["Priya", "Tom", "Lena", "Carlos", "Mei"],
    "business": ["bakery", "bike repair shop", "dog grooming salon", "coworking space", "bookshop cafe"],
    "feature": ["dark mode", "team workspaces", "offline sync", "two-factor login"],
    "weekday": ["Monday", "Thursday", "Saturday"],
    "language": ["French", "Spanish", "German", "Japanese", "Portuguese", "Italian"],
    "language_code": ["Python", "Java", "Go", "TypeScript"],
    "tool": ["Node.js", "Python", "Docker", "git"],
    "status": ["404", "429", "503", "401"],
    "table_name": ["orders", "tickets", "users"],
    "a": ["17", "23", "48", "125", "312"],
    "b": ["6", "9", "14", "27"],
    "pct": ["5", "12", "15", "18", "7.5"],
    "pct2": ["9", "14", "21"],
    "amount": ["80", "240", "1,500", "12,000"],
    "square": ["144", "225", "1024", "361"],
    "numbers": ["4, 8, 15, 16, 23, 42", "10, 20, 35", "3.5, 4.25, 9, 11"],
    "price": ["49", "120", "899"],
    "cost": ["30", "70", "610"],
    "time1": ["08:15", "13:40", "17:05"],
    "time2": ["09:30", "15:10", "18:45"],
    "speed1": ["80", "95", "110"],
    "speed2": ["120", "140", "160"],
    "n1": ["10,000", "4,200", "52,000"],
    "c1": ["320", "118", "1,610"],
    "n2": ["10,150", "4,180", "51,700"],
    "c2": ["365", "131", "1,702"],
    "product_a": ["Jira", "Notion", "AWS", "Slack", "Salesforce"],
    "product_b": ["Linear", "Confluence", "GCP", "Microsoft Teams", "HubSpot"],
    "tech_a": ["REST", "TCP", "SQL databases", "Docker", "OAuth"],
    "tech_b": ["GraphQL", "UDP", "NoSQL databases", "virtual machines", "SAML"],
    "option_a": ["Heroku", "on-premise servers", "a monorepo", "MySQL"],
    "option_b": ["Kubernetes", "AWS", "multiple repositories", "PostgreSQL"],
    "thing": ["hosting", "CI pipeline", "data warehouse", "email provider"],
    "audience": ["freelance designers", "IT managers", "first-time founders", "nurses"],
    "story_premise": [
        "a lighthouse keeper who finds a message in a bottle",
        "a robot learning to bake bread",
        "two strangers stuck in an elevator",
    ],
    "concept_easy": ["a VPN", "inflation", "a cookie in a browser", "compound interest", "a spreadsheet formula"],
    "concept_mid": [
        "public-key cryptography",
        "a database index",
        "DNS resolution",
        "garbage collection",
        "OAuth's authorization code flow",
    ],
    "prime": ["2", "3", "5", "7"],
    "subject_a": ["Your invoice is ready", "Last chance: 20% off", "Meet our new dashboard"],
    "subject_b": ["Invoice #4471 for March", "Sale ends tonight", "The dashboard you asked for is here"],
    "one_liner": ["[x for x in items if x]", "sorted(d, key=d.get)", "zip(*rows)", "' '.join(words[::-1])"],
    "short_sentence": [
        "Where is the train station?",
        "Thank you for your order.",
        "The meeting is moved to Friday.",
        "Please keep your receipt.",
    ],
    "foreign_short": ["Mañana llegará el paquete.", "¿Dónde está la estación?", "Gracias por su paciencia."],
    "constraints": [
        "a budget of 2M EUR, a regulator that requires local data storage, and a competitor with 60% share",
        "no hiring for six months, a fixed launch date, and two teams that share one database",
        "a 30% cost cut, no loss of uptime, and a vendor contract that ends in four months",
    ],
}

SENTENCES = [
    "The company reported revenue of 4.2 million dollars for the quarter, up 8 percent from last year.",
    "Customer complaints about delivery times fell after the new warehouse opened in March.",
    "The board approved a plan to expand into two new regions next year.",
    "Engineers migrated the billing system to a new database without downtime.",
    "Marketing spend rose sharply while the number of new sign-ups stayed flat.",
    "The city council voted to extend the bike lane network by 40 kilometers.",
    "Researchers found that short breaks improved concentration in office workers.",
    "The product team shipped three features and fixed more than 120 bugs.",
    "Support response times improved to under two hours on average.",
    "Analysts expect interest rates to remain stable through the summer.",
    "The new onboarding flow reduced drop-off during the first week.",
    "A storm delayed shipments from the northern warehouse for three days.",
]
SENTENCES_ES = [
    "La empresa aumentó sus ventas un 12 % en el último trimestre.",
    "El nuevo almacén redujo los tiempos de entrega.",
    "Los clientes valoran la atención rápida.",
    "El equipo lanzó tres funciones nuevas este mes.",
    "La demanda creció en las ciudades pequeñas.",
]
SENTENCES_FR = [
    "L'entreprise a augmenté son chiffre d'affaires de 12 % ce trimestre.",
    "Le nouvel entrepôt a réduit les délais de livraison.",
    "Les clients apprécient un support rapide.",
    "L'équipe a lancé trois nouvelles fonctionnalités.",
    "La demande a progressé dans les petites villes.",
]
SENTENCES_DE = [
    "Das Unternehmen steigerte den Umsatz im letzten Quartal um 12 Prozent.",
    "Das neue Lager verkürzte die Lieferzeiten deutlich.",
    "Kunden schätzen den schnellen Support.",
    "Das Team hat drei neue Funktionen veröffentlicht.",
    "Die Nachfrage wuchs vor allem in Kleinstädten.",
]
SENTENCES_ZH = [
    "公司上个季度的销售额增长了百分之十二。",
    "新仓库明显缩短了配送时间。",
    "客户很重视快速的售后服务。",
    "团队本月发布了三个新功能。",
    "小城市的需求增长最快。",
]

REVIEWS = [
    "Arrived broken and support never answered.",
    "Absolutely love it, works perfectly!",
    "It's okay, does what it says.",
    "Terrible battery life, returning it.",
    "Fast shipping, great quality.",
]
TICKETS = [
    "I was charged twice for my subscription this month.",
    "The app crashes when I upload a photo.",
    "Do you offer discounts for nonprofits?",
    "How do I add a teammate to my workspace?",
    "I want to cancel my plan and get a refund.",
]


def _pick(rng: random.Random, items: list[str], k: int) -> list[str]:
    return [rng.choice(items) for _ in range(k)]


def _article(rng: random.Random, pool: list[str] = SENTENCES, n: tuple[int, int] = (8, 18)) -> str:
    count = rng.randint(*n)
    paragraphs, current = [], []
    for sentence in _pick(rng, pool, count):
        current.append(sentence)
        if len(current) >= 4:
            paragraphs.append(" ".join(current))
            current = []
    if current:
        paragraphs.append(" ".join(current))
    return "\n\n".join(paragraphs)


def _invoice(rng: random.Random) -> str:
    items = ["Widget A", "Cable kit", "Consulting hour", "License seat", "Support plan", "Shipping", "Adapter"]
    lines = [
        f"INVOICE #{rng.randint(10000, 99999)}",
        f"Date: 2026-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
        f"Due: 2026-1{rng.randint(0, 2)}-0{rng.randint(1, 9)}",
        "Bill to: Northwind Traders, 12 Harbour St, Leeds",
        "VAT: GB123456789",
        "",
        "Item | Qty | Unit | Amount",
    ]
    total = 0.0
    for _ in range(rng.randint(6, 30)):
        qty, unit = rng.randint(1, 20), rng.randint(5, 400) + 0.99
        total += qty * unit
        lines.append(f"{rng.choice(items)} | {qty} | {unit:.2f} | {qty * unit:.2f}")
    lines += ["", f"Subtotal: {total:.2f}", f"Total due: {total * 1.2:.2f} GBP", "IBAN: GB29 NWBK 6016 1331 9268 19"]
    return "\n".join(lines)


def _log(rng: random.Random) -> str:
    levels = ["INFO", "INFO", "INFO", "WARN", "ERROR", "DEBUG"]
    messages = [
        "request served in 12ms",
        "cache miss for key user:42",
        "connection reset by peer",
        "retrying upstream call",
        "job finished",
        "disk usage at 81%",
        "timeout talking to db",
    ]
    return "\n".join(
        f"2026-03-0{rng.randint(1, 9)}T1{rng.randint(0, 9)}:{rng.randint(10, 59)}:{rng.randint(10, 59)}Z "
        f"{rng.choice(levels)} {rng.choice(messages)}"
        for _ in range(rng.randint(15, 50))
    )


def _table(rng: random.Random) -> str:
    rows = ["month,region,revenue,orders,returns"]
    for month in ["Jan", "Feb", "Mar", "Apr", "May", "Jun"][: rng.randint(3, 6)]:
        for region in ["North", "South", "West"]:
            rows.append(f"{month},{region},{rng.randint(20, 90) * 1000},{rng.randint(100, 900)},{rng.randint(3, 60)}")
    return "\n".join(rows)


def _email(rng: random.Random) -> str:
    return (
        f"Hi team,\n\nFollowing up on order #{rng.randint(1000, 9999)} for {rng.choice(SLOTS['name'])} "
        f"(contact: {rng.choice(['ana@example.com', 'j.smith@example.org', 'billing@northwind.example'])}). "
        + " ".join(_pick(rng, SENTENCES, rng.randint(3, 8)))
        + "\nShip to: 221B Baker Street, London NW1 6XE.\n\nBest,\nSam\nsam@example.net | +44 20 7946 0958"
    )


def _contract(rng: random.Random) -> str:
    clauses = [
        "1. Term. This Agreement starts on the Effective Date and continues for twelve (12) months.",
        "2. Termination. Either party may terminate with {d} days' written notice.",
        "3. Fees. The Customer pays the fees in Schedule A within thirty (30) days of invoice.",
        "4. Confidentiality. Each party keeps the other's Confidential Information secret for five years.",
        "5. Liability. Neither party's liability exceeds the fees paid in the preceding twelve months.",
        "6. Data Protection. The Supplier processes Personal Data only on documented instructions.",
        "7. Service Levels. The Supplier provides 99.9% monthly availability; credits apply below it.",
    ]
    return "\n".join(c.replace("{d}", str(rng.choice([30, 60, 90]))) for c in clauses[: rng.randint(4, 7)])


CODE_BLOCKS = [
    "def total(items):\n    t = 0\n    for i in range(len(items)):\n        if items[i]['price'] != None:\n"
    "            t = t + items[i]['price'] * items[i]['qty']\n    return t",
    "def find_user(users, name):\n    for u in users:\n        if u.name == name:\n"
    "            return u\n    return None",
    "def parse(line):\n    parts = line.split(',')\n"
    "    return {'id': int(parts[0]), 'name': parts[1], 'score': float(parts[2])}",
]
BUGGY = [
    ("def average(xs):\n    return sum(xs) / len(xs)\n\nprint(average([]))", "ZeroDivisionError: division by zero"),
    ("import json\ndata = json.load('config.json')", "AttributeError: 'str' object has no attribute 'read'"),
    ("for i in range(10):\n    print(items[i])", "IndexError: list index out of range"),
]
MATERIAL = {
    "article": _article,
    "article2": _article,
    "article3": _article,
    "report": lambda r: _article(r, n=(20, 30)),
    "notes": lambda r: "\n".join("- " + s for s in _pick(r, SENTENCES, r.randint(5, 12))),
    "notes_short": lambda r: "; ".join(
        _pick(r, ["refund approved", "ships Monday", "sorry for delay", "discount code SAVE10"], 3)
    ),
    "email": _email,
    "invoice": _invoice,
    "log": _log,
    "table": _table,
    "contract": _contract,
    "article_es": lambda r: _article(r, SENTENCES_ES, (4, 10)),
    "article_fr": lambda r: _article(r, SENTENCES_FR, (4, 10)),
    "article_de": lambda r: _article(r, SENTENCES_DE, (4, 10)),
    "article_zh": lambda r: _article(r, SENTENCES_ZH, (4, 10)),
    "review": lambda r: r.choice(REVIEWS),
    "ticket": lambda r: r.choice(TICKETS),
    "headlines": lambda r: "\n".join(
        r.sample(
            [
                "Rangers win the cup in overtime",
                "Parliament passes budget",
                "Chipmaker unveils faster GPU",
                "Bank raises rates",
                "Striker signs record deal",
            ],
            4,
        )
    ),
    "spam_email": lambda r: r.choice(
        [
            "Congratulations!!! You won a FREE cruise, click here to claim now",
            "Hi Sam, attached are the slides from today's meeting.",
        ]
    ),
    "signature": lambda r: f"Jane Doe | Sales Lead | +1 (415) 555-0{r.randint(100, 199)} | jane@acme.example",
    "sentence_dates": lambda r: "We met on 3 March 2025, signed on April 9th and go live on 2026-01-15.",
    "product_desc": lambda r: (
        "Lightweight waterproof jacket with taped seams, two zip pockets and a packable hood. "
        "Ideal for hiking and city commutes."
    ),
    "foreign_email": lambda r: r.choice(
        [
            "Hola, mi pedido llegó incompleto, faltan dos camisetas. ¿Me pueden ayudar?",
            "Bonjour, je n'ai pas reçu ma facture du mois dernier. Merci de me l'envoyer.",
            "Hallo, ich möchte mein Abonnement kündigen. Wie geht das?",
        ]
    ),
    "bad_grammar": lambda r: r.choice(
        [
            "me and him goes to the store yesterday",
            "their going to be late becuase of traffic",
            "i has send the report to you're manager",
        ]
    ),
    "bad_es": lambda r: "ayer fuymos al zine y despues comimos en un restorante",
    "casual": lambda r: r.choice(["hey can u send me the numbers asap", "yo the deploy broke again, fix pls"]),
    "long_sentence": lambda r: (
        "Due to the fact that we are currently in the process of reviewing all of the "
        "applications that we have received, we will not be able to respond to each applicant until next week."
    ),
    "para_typos": lambda r: (
        "Our compnay was founded in 2012 and have grown to over 200 employes. We beleive in "
        "quality and and customer focus."
    ),
    "json_small": lambda r: '{"name": "app", "version": 3, "features": ["auth", "billing"], "debug": false}',
    "code_block": lambda r: r.choice(CODE_BLOCKS),
    "buggy_code": None,
    "error": None,
    "schema": lambda r: "customers(id, name, country), orders(id, customer_id, created_at, status, total)",
    "js_code": lambda r: (
        "fs.readFile('a.txt', function(err, data) {\n  if (err) return cb(err);\n"
        "  db.save(data, function(err2) {\n    if (err2) return cb(err2);\n    cb(null, 'ok');\n  });\n});"
    ),
    "slow_sql": lambda r: (
        "SELECT * FROM orders o WHERE (SELECT COUNT(*) FROM order_items i WHERE i.order_id = o.id) "
        "> 3 AND lower(o.email) LIKE '%@gmail.com' ORDER BY created_at DESC;"
    ),
    "feedback_list": lambda r: "\n".join("- " + r.choice(REVIEWS + TICKETS) for _ in range(r.randint(8, 15))),
    "tech_para": lambda r: (
        "The service uses a write-ahead log replicated across three availability zones with "
        "quorum acknowledgements, so a single-zone failure loses no committed writes and failover completes in under "
        "thirty seconds, at the price of roughly 4 ms extra write latency."
    ),
    "marketing_copy": lambda r: (
        "Coffee that wakes up before you do. Brewed bold, poured fast, and never bitter about Mondays."
    ),
    "marketing_es": lambda r: "Un café que se despierta antes que tú. Intenso, rápido y nunca amargo con los lunes.",
    "go_code": lambda r: (
        "func (s *Store) Move(a, b *Account, n int) {\n  a.mu.Lock()\n  b.mu.Lock()\n"
        "  a.bal -= n\n  b.bal += n\n  b.mu.Unlock()\n  a.mu.Unlock()\n}"
    ),
    "ir": lambda r: (
        "%1 = const 4\n%2 = const 5\n%3 = add %1, %2\n%4 = mul %3, %x\nbr %c, L1, L2\nL1: %5 = add %4, 0\n"
        "ret %5\nL2: %6 = sub %4, %4\nret %6"
    ),
    "auth_code": lambda r: (
        "def login(req):\n    user = db.query(f\"SELECT * FROM users WHERE name='{req.name}'\")\n"
        "    if user and user.password == req.password:\n        session['uid'] = user.id\n"
        "        return redirect(req.args.get('next'))\n    return 'bad login'"
    ),
    "quadratic_code": lambda r: (
        "def pairs(xs, target):\n    out = []\n    for i in range(len(xs)):\n"
        "        for j in range(i + 1, len(xs)):\n            if xs[i] + xs[j] == target:\n"
        "                out.append((i, j))\n    return out"
    ),
    "abstract": lambda r: (
        "We surveyed 212 remote workers and found that those who used our focus app reported 23% "
        "higher productivity than non-users. We conclude that the app causes productivity gains."
    ),
}

SYSTEM_PROMPTS = [
    "You are a helpful assistant.",
    "You are a customer support agent for an online store. Be concise and friendly.",
    "You are an assistant for the analytics team.",
    "Answer in the user's language.",
]
EARLIER_TURNS = [
    ("Hi!", "Hello! How can I help you today?"),
    ("I have a few questions for you.", "Sure, go ahead."),
    ("Thanks for the earlier answer.", "You're welcome!"),
    ("Can you help me with something?", "Of course. What do you need?"),
]
PREFIXES = ["", "", "", "Quick question: ", "Hey, ", "Please help: ", "I need this for work. "]


def fill(template: str, rng: random.Random) -> str:
    text = template.replace("\\n", "\n")
    if "{buggy_code}" in text:
        code, error = rng.choice(BUGGY)
        text = text.replace("{buggy_code}", code).replace("{error}", error)
    while "{" in text:
        start = text.index("{")
        end = text.index("}", start)
        name = text[start + 1 : end]
        if name in SLOTS:
            value = rng.choice(SLOTS[name])
        elif name in MATERIAL and MATERIAL[name] is not None:
            value = MATERIAL[name](rng)  # type: ignore[misc]
        else:
            value = "\x00" + name + "\x01"  # literal braces (code): keep them
        text = text[:start] + value + text[end + 1 :]
    return text.replace("\x00", "{").replace("\x01", "}")


def variants(family: str, template: str, rng: random.Random) -> list[list[dict[str, str]]]:
    out = []
    for i in range(VARIANTS):
        text = fill(template, rng)
        if i % 3 == 1 and template.isascii():
            text = rng.choice(PREFIXES) + text
        messages: list[dict[str, str]] = []
        if i % 4 == 2:
            messages.append({"role": "system", "content": rng.choice(SYSTEM_PROMPTS)})
        if i % 5 == 3:  # a conversation that was already going on
            for user, assistant in rng.sample(EARLIER_TURNS, rng.randint(1, 3)):
                messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
        messages.append({"role": "user", "content": text})
        out.append(messages)
    return out


def main() -> None:
    rows = []
    for seeds in sorted(HERE.glob("seeds_*.txt")):
        for number, line in enumerate(seeds.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip() or line.startswith("#"):
                continue
            tier, task, template = line.split("|", 2)
            family = f"{seeds.stem}:{number}"
            digest = int(hashlib.sha256(family.encode()).hexdigest()[:8], 16)
            split = "test" if (digest % 1000) / 1000 < TEST_SHARE else "train"
            rng = random.Random(digest)
            seen = set()
            for messages in variants(family, template, rng):
                key = json.dumps(messages, sort_keys=True)
                if key in seen:
                    continue
                seen.add(key)
                rows.append(
                    {
                        "id": f"{family}:{len(seen)}",
                        "split": split,
                        "tier": tier,
                        "task": task,
                        "lang": "en" if seeds.stem == "seeds_en" else "intl",
                        "messages": messages,
                    }
                )
    with (HERE / "prompts.jsonl").open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(rows)} prompts")


if __name__ == "__main__":
    main()
