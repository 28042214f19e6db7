"""The words the heuristic classifier reads, in English and the languages most often seen at a gateway
(Spanish, French, German, Portuguese, Italian, Dutch, Russian; Chinese, Japanese and Korean as substrings).

A word counts for its exact form and, when longer than `STEM` letters, for its first `STEM` letters, so
"summarise", "summarize" and "summary" share a cue: a cheap stemmer that works across these languages. A word
written `word!` counts only exactly (its stem would catch common words: "convergence" and "convert").
"""

from __future__ import annotations

STEM = 6

# task -> cue words (a cue's weight is 1 unless written word:weight)
TASK_WORDS: dict[str, str] = {
    "chat": """
        hi hello hey hiya thanks thank thx cheers morning evening howdy bye goodbye lol haha chat
        hola gracias buenos buenas bonjour salut merci bonsoir hallo danke guten moin ciao grazie buongiorno
        olá ola obrigado obrigada bom boa hoi bedankt привет спасибо здравствуйте
    """,
    "factual_qa": """
        who:0.6 when:0.6 where:0.6 capital:1.5 define:1.2 definition:1.2 meaning:0.8 population:1.2 invented:1.2
        founded:1 year:0.4 tallest:1.2 largest:0.8 fact:0.8 born:0.8 located:1 stands:0.6 abbreviation:1
        quién:0.6 cuándo:0.6 dónde:0.6 capital qui:0.3 quand:0.5 où:0.5 capitale wer:0.4 wann:0.6 wo:0.4
        hauptstadt quem:0.5 quando:0.5 onde:0.5 chi:0.3 dove:0.5 significa:1 signifie:1 bedeutet:1 кто:0.6
        когда:0.6 где:0.6 столица:1.5 explain:0.8 explica:0.8 explique:0.8 erkläre:0.8 erklär:0.8 spiega:0.8
        объясни:0.8 difference!:0.8 differences!:0.8 diferencia:0.8 différence:0.8 unterschied:0.8
    """,
    "summarise": """
        summarize:3 summarise:3 summary:3 summarization:3 tldr:3 recap:2.5 condense:2.5 gist:2
        digest:1.2 shorten:2.5 outline:0.8 highlights:1.2 overview:1
        resume:2 resumir:3 resumen:3 résume:3 résumé:2 résumer:3 resumo:3 riassumi:3 riassunto:3 sintetiza:2
        zusammenfassen:3 zusammenfassung:3 fasse:2 samenvatting:3 vat:1 kurzfassung:3 суммируй:3 кратко:2
    """,
    "extract": """
        extract:3 extraction:3 pull:1.5 parse:1.5 fields:1.5 field:1 json:1.2 entities:2 invoice:1.5
        number:0.5 amount:0.8 total:0.6 date:0.6 dates:1 email:0.6 emails:1 address:0.6 names:0.8 sku:1.5
        iban:1.5 vat:1 list:0.5 locate:1 identify:0.8 lookup:1.2 table:0.6 csv:0.8 order:0.4 due:0.8
        extrae:3 extraer:3 extraire:3 extrais:3 extrahiere:3 extrahieren:3 extrair:3 estrai:3 estrarre:3
        factura:1.5 facture:1.5 rechnung:1.5 fatura:1.5 fattura:1.5 извлеки:3 счет:1.5
    """,
    "classify": """
        classify:3 classification:3 categorize:3 categorise:3 category:2 categories:2 label:2 labels:2
        sentiment:3 tag:1.5 tags:1.5 spam:2 intent:2 positive!:1 negative:1 neutral:1.5 triage:2 bucket:1.5
        rate:1.2 stars:1.2 urgent:1.5 priority:0.8
        clasifica:3 clasificar:3 categoría:2 sentimiento:3 classe:2 classifie:3 classer:2 catégorie:2
        klassifiziere:3 kategorie:2 stimmung:2 classifique:3 categoria:2 classifica:3 классифицируй:3
    """,
    "translate": """
        translate:3 translation:3 translated:2 into:0.3 english:0.8 french:0.8 spanish:0.8 german:0.8
        italian:0.8 portuguese:0.8 japanese:0.8 chinese:0.8 korean:0.8 russian:0.8 dutch:0.8 arabic:0.8
        traduce:3 traducir:3 traducción:3 traduire:3 traduis:3 traduction:3 übersetze:3 übersetzen:3
        übersetzung:3 traduza:3 traduzir:3 tradução:3 traduci:3 tradurre:3 vertaal:3 переведи:3 перевод:3
        inglés:0.8 anglais:0.8 englisch:0.8 inglês:0.8 inglese:0.8 français:0.6 francés:0.8 deutsch:0.6
        alemán:0.8 allemand:0.8 español:0.6 espagnol:0.8 spanisch:0.8
    """,
    "rewrite": """
        rewrite:3 rephrase:3 paraphrase:3 reword:3 proofread:3 polish:2 edit:1.5 improve:1 grammar:2.5
        typos:2.5 typo:2 spelling:2 formal:1.5 friendlier!:1.5 concise:1.2 tone:1.5 simplify:1.2 fix:0.6
        clearer:1.5 shorter:1 punctuation:2 politer:1.5 polite:1
        reescribe:3 reescribir:3 reformula:3 corrige:2 corregir:2 gramática:2 réécris:3 reformule:3
        reformuler:3 grammaire:2 umschreiben:3 formuliere:3 umformulieren:3 korrigiere:2 grammatik:2
        reescreva:3 reescrever:3 riscrivi:3 riformula:3 correggi:2 перепиши:3 исправь:2
    """,
    "code": """
        code:2 python:2.5 javascript:2.5 typescript:2.5 java:2 rust:2 golang:2 kotlin:2 swift:1 ruby:1.5
        php:2 sql:2.5 bash:2 shell:1 regex:2.5 regexp:2.5 function:1.5 method:1 class:0.8 api:1 endpoint:1.2
        bug:2 debug:2.5 compile:2 compiler:2 exception!:2 traceback:2.5 stacktrace:2.5 refactor:3 implement:2
        script:1.5 library:1 framework:1 docker:2 kubernetes:2 git:2 npm:2 pip:1 react:2 django:2 flask:2
        query:1 database:1 schema:1 json:0.5 yaml:1 html:2 css:2 algorithm:1.5 programming:2 programa:1.5
        variable:1.2 loop:1.2 array:1.5 recursion:2 async:2 thread:1.2 threads:1.5 mutex:2.5 pandas:2 numpy:2
        unittest:2 pytest:2 tests:1 linux:1 nginx:2 terraform:2 lambda:1 microservice:2 microservices:2
        código:2 función:1.5 fonction:1.5 funktion:1.5 funzione:1.5 função:1.5 programm:1.5 код:2 функцию:1.5
    """,
    "math": """
        solve:2 equation:2.5 equations:2.5 integral:3 derivative:3 differentiate!:3 integrate:1.5 limit:1
        prove:2 proof:2 theorem:2.5 lemma:2.5 probability:2.5 matrix:2 eigenvalue:3 eigenvalues:3
        calculate:1.5 compute:1 algebra:2.5 geometry:2.5 triangle:1.5 polynomial:2.5 percent:1 percentage:1.2
        intégrale:3 dérivée:3 ln:1.5 dx:2 sin:1 cos:1 log:0.8 integrale:3 ableitung:3 derivada:3
        sum:1 product:0.5 prime:1.5 primes:1.5 divisible:2 modulo:1.5 factorial:2 logarithm:2 sqrt:2 arithmetic:2
        statistics:1 variance:1.5 mean:0.4 median:1 expected:0.6 combinatorics:3 permutations:2 inequality:2.5
        integer:1.5 integers:1.5 real:0.3 convergence!:2 series:0.8 vector:1 vectors:1 calculus:3 math:2.5
        maths:2.5 mathematics:2.5 fraction:2 interest!:0.6 compound:0.8 area:0.8 radius:1.5 angle:1.5
        abelian:3 homomorphism:3 isomorphic:3 continuous!:1.5 differentiable:2 monotone:2 bounded:1
        sequence:0.8 recurrence:2 tile:1 tiling:1.5 dice:2 miles:1 kilometers:1 km:1 average:1.5
        times:0.6 square:1 root:0.8 irrational:2.5 divisible:2 cubes:1.5 functions:0.8 mal:0.5
        resuelve:2 ecuación:2.5 calcula:1.5 calcular:1.5 demuestra:2 probabilidad:2.5 résous:2 équation:2.5
        calcule:1.5 démontre:2 probabilité:2.5 löse:2 gleichung:2.5 berechne:1.5 beweise:2
        wahrscheinlichkeit:2.5 resolva:2 equação:2.5 risolvi:2 equazione:2.5 calcola:1.5 dimostra:2
        реши:2 уравнение:2.5 вычисли:1.5 докажи:2 интеграл:3
    """,
    "reasoning": """
        why:1 reason:1 reasoning:2 puzzle:3 riddle:3 logic:2 logical:2 deduce:2.5 infer:1.5 paradox:2.5
        think:0.6 consequences:1.5 scenario:1 dilemma:2 implications:1.5 hypothetical:2 plan:1 planning:1.5
        argument:1.5 argue:1.5 counterargument:2 fallacy:2 cause:1 causes:1 explain:0.8 liars:2.5 liar:2
        truth:0.6 schedule:1 constraints!:1.5 step:0.5 weigh:1.2 decide:1 should:0.5 ethical:1.5 ethics:1.5
        heavier:1.5 knights:2.5 knaves:2.5 utilitarian:2 deontological:2 calendario:1 propón:1 plazos:1
        caballeros:2.5 bribones:2.5 justifica:1 explain:0.4 worth:0.8 whether:0.6
        porqué:1 razona:2 acertijo:3 lógica:2 pourquoi:1 énigme:3 raisonne:2 warum:1 rätsel:3 logik:2
        porque:0.5 enigma:3 perché:0.8 indovinello:3 почему:1 загадка:3 логика:2
    """,
    "creative": """
        poem:3 poetry:3 haiku:3 sonnet:3 limerick:3 story:2.5 stories:2.5 tale:2 fiction:2.5 novel:1.5
        slogan:3 tagline:3 taglines:3 slogans:3 jingle:3 lyrics:3 song:2 joke:2 jokes:2 headline:2 headlines:2
        tweet:2 caption:2 captions:2 ad:1 ads:1.5 copy:1 copywriting:3 blog:2 post:0.8 newsletter:2
        creative!:2 imagine:1.5 character!:1.5 characters!:1.5 plot:2 screenplay:3 dialogue:1.5 names:0.5
        brainstorm:2 ideas:1 campaign:1.5 marketing:1.5 brand:1.2 product:0.4 description!:0.8 catchy:2.5
        note:1 script:1.2 calendar:1 hashtags:2 hashtag:2 speech:2 toast:1.5
        draft:1.5 launch:1 onboarding:0.8 landing:1.5 cta:2 birthday:2.5 message:0.3 chapter:2 narrators:2
        rédige:1.5 redacta:1.5 escribe:0.6 écris:0.6 schreibe:0.6 scrivi:0.6 write:0.4
        cuento:2.5 poema:3 historia:1.5 eslogan:3 poème:3 histoire:1.5 conte:2 gedicht:3 geschichte:1.5
        werbetext:3 poesia:3 storia:1.5 racconto:2.5 стихотворение:3 рассказ:2.5 слоган:3
    """,
    "analysis": """
        analyze:3 analyse:3 analysis:3 analytics:2 compare:2.5 comparison:2.5 evaluate:2.5 evaluation:2
        assess:2.5 assessment:2 pros:2 cons:2 tradeoffs:2.5 trade:1 strengths:1.5 weaknesses:1.5 swot:3
        trend:2 trends:2 insights:2.5 insight:2 metrics:1.5 kpi:2 kpis:2 churn:2 cohort:2 revenue:1.2
        retention:1.5 funnel:1.5 forecast:2 recommend:1.5 recommendation:1.5 recommendations:1.5 strategy:1.5
        report:1 data:0.8 dataset:1.5 correlation:2 regression:1.5 review:1 critique:2 implications:1
        improvements:1 conversion:1 suggest:0.4
        driving:1 increase:0.8 decline:1 decrease:0.8 growth:0.8 drop:0.8 staff:0.6
        market:1 competitors:1.5 competitive:1.5 risks:1.5 risk:1 audit:1.5 investigate!:1.5 diagnose:1.5
        analiza:3 análisis:3 compara:2.5 evalúa:2.5 tendencias:2 analyser:3 analyse:3 compare:2.5 évalue:2.5
        analysiere:3 vergleiche:2.5 bewerte:2.5 analise:3 análise:3 analizza:3 confronta:2.5
        проанализируй:3 анализ:3 сравни:2.5
    """,
}

# Words that make a request harder (weight added to complexity, capped) ...
HARD_WORDS = """
    prove:0.4 proof:0.3 rigorous:0.3 rigorously:0.3 theorem:0.2 lemma:0.25 derive:0.2 derivation:0.2
    formally:0.2 formal:0.08 induction:0.2 contradiction!:0.15 irrational:0.2 infinitely:0.2 olympiad:0.35
    optimal:0.15 optimize:0.12 optimise:0.12 optimization:0.12 complexity!:0.12 asymptotic:0.2 amortized:0.2
    concurrency:0.2 concurrent:0.15 deadlock:0.25 race:0.12 lockfree:0.3 distributed:0.2 consensus:0.2
    raft:0.2 paxos:0.3 architecture:0.15 scalable:0.15 scalability:0.15 scale:0.06 sharding:0.2 replication:0.15
    migrate:0.08 migration:0.1 security:0.1 vulnerability:0.2 vulnerabilities:0.2 exploit:0.15 threat:0.1
    cryptographic:0.2 tradeoffs:0.15 trade:0.05 tradeoff:0.15 nuanced:0.12 comprehensive:0.12 exhaustive:0.15
    detailed:0.05 thorough:0.1 strategy:0.08 strategic:0.1 roadmap:0.1 multistep:0.15 constraints!:0.1
    constraint!:0.08 edge:0.05 invariants:0.2 invariant:0.2 correctness!:0.15 compiler:0.1 interpreter:0.12
    kernel:0.1 memory:0.05 leak:0.1 profiling!:0.1 latency:0.06 throughput!:0.08 bottleneck:0.1
    eigenvalues:0.1 eigenvalue:0.1 differential!:0.2 stochastic:0.2 bayesian:0.15 posterior:0.15
    markov:0.15 topology:0.2 manifold:0.25 hilbert:0.25 convergence!:0.15 converges!:0.15 bound:0.08
    legal:0.08 liability:0.12 jurisdiction:0.12 clinical:0.12 diagnosis:0.12 regulatory!:0.12 compliance!:0.08
    causal:0.12 counterfactual:0.15 ambiguous:0.08 contradictory!:0.1 conflicting:0.1 synthesize:0.12
    synthesise:0.12 critique:0.08 design:0.06 implement:0.04 production!:0.06 robust:0.08 fault:0.08
    tolerant:0.08 consistency!:0.1 transactions:0.08 isolation:0.1 schedule:0.04 scheduling:0.1
    demuestra:0.4 demostración:0.3 riguroso:0.3 démontre:0.4 démonstration:0.3 rigoureuse:0.3 beweise:0.4
    beweis:0.3 streng:0.1 demonstre:0.4 dimostra:0.4 dimostrazione:0.3 докажи:0.4 доказательство:0.3
    arquitectura:0.15 architektur:0.15 arquitetura:0.15 architettura:0.15 архитектура:0.15
    idioms:0.2 idiom:0.2 playful:0.12 tone:0.1 precisely:0.12 consistent!:0.08 adapting:0.1 adapt:0.1
    disagree:0.2 disagreement:0.2 briefing:0.12 executive!:0.1 recommendation:0.08 risks:0.06
    hypothesis:0.15 methodological:0.25 critically:0.2 cannibalization:0.25 interventions!:0.12
    literary!:0.2 unreliable:0.2 narrators:0.1 sharding:0.2 isolation:0.08 tenant:0.06 tenants:0.06
    rebalance:0.12 exactly:0.08 abelian:0.3 homomorphism:0.25 continuous!:0.1 uniformly:0.15
    knights:0.15 knaves:0.15 utilitarian:0.15 deontological:0.2 frameworks:0.06 recurrence:0.15
    subheadings:0.08 sequence:0.05 test:0.02 tests:0.05 edge:0.05 timezones:0.1 paginated:0.1
    onboarding:0.08 launch:0.06 landing:0.08 accroche:0.1 lancement:0.06 audit:0.12 authentication:0.05
    difference!:0.06 differences!:0.08 diferencias:0.08 différences:0.08 unterschiede:0.08
    integral:0.1 intégrale:0.1 derivative:0.1 dérivée:0.1 eigenvalues!:0.1 probability:0.08 equations:0.06
    audience:0.08 sequence:0.1 script:0.08 calendar:0.08 campaign:0.08 speech:0.12
    verteilte:0.2 verteilt:0.2 distribuido:0.2 distribuida:0.2 distribué:0.2 distribuée:0.2 distribuito:0.2
    konsistenz:0.12 consistencia:0.12 cohérence:0.12 coerenza:0.12 nebenläufigkeit:0.2 concurrencia:0.2
    ausfälle:0.08 ausfall:0.08 fallos:0.08 pannes:0.08 latenz:0.06 latencia:0.06 latence:0.06
    kompromisse:0.12 compromisos:0.12 compromis:0.12 entwirf:0.06 diseña:0.06 concevez:0.06 progetta:0.06
    risiken:0.06 riesgos:0.06 risques:0.06 rischi:0.06 strategie:0.08 estrategia:0.08 stratégie:0.08
    rechenzentren:0.1 zustellung:0.06
    keeping:0.15 preserve:0.15 preserving:0.15 intact:0.15 style:0.1 voice:0.1 register:0.1 nuance:0.15
    localize:0.15 localise:0.15 manteniendo:0.15 conservant:0.15 beibehalten:0.15 mantenendo:0.15
    across:0.08 themes:0.1 structured:0.08 sections:0.06 quotes:0.05 synthesis:0.15 briefing:0.12
    example:0.06 examples:0.06 tradeoff:0.15 justify:0.1 justification:0.1 rationale:0.1
    estrictos:0.1 stricte:0.1 interruption:0.1 caballeros:0.15 bribones:0.15 juegos:0.15 palabras:0.05
"""

# Phrases found as substrings of the instruction: (text, task or "", task weight, difficulty)
PHRASES: tuple[tuple[str, str, float, float], ...] = (
    ("show that", "math", 2.5, 0.4),
    ("when would you", "", 0.0, 0.1),
    ("how long until", "", 0.0, 0.06),
    ("prove that", "math", 2.5, 0.1),
    ("lock-free", "code", 2.0, 0.3),
    ("exactly-once", "code", 1.5, 0.25),
    ("race condition", "code", 2.0, 0.2),
    ("memory-safe", "code", 1.5, 0.15),
    ("without downtime", "", 0.0, 0.15),
    ("sans interruption", "", 0.0, 0.15),
    ("second-order", "", 0.0, 0.15),
    ("step by step", "", 0.0, 0.05),
    ("trade-off", "", 0.0, 0.15),
    ("o(1)", "code", 1.5, 0.1),
    ("o(n", "code", 1.5, 0.12),
    ("unit test", "code", 1.5, 0.08),
    ("with tests", "code", 1.0, 0.08),
    ("error handling", "code", 1.0, 0.08),
    ("async/await", "code", 2.0, 0.05),
    ("juegos de palabras", "translate", 0.5, 0.2),
    ("subject line", "creative", 1.5, 0.0),
    ("case study", "creative", 2.0, 0.15),
    ("call to action", "creative", 1.5, 0.05),
    ("what should i do", "factual_qa", 1.0, 0.0),
    ("walk me through", "reasoning", 1.5, 0.05),
    ("explain how", "factual_qa", 0.5, 0.15),
    ("how it works", "factual_qa", 0.5, 0.1),
    ("works, with", "", 0.0, 0.05),
    ("main differences", "analysis", 1.0, 0.12),
    ("when to use", "", 0.0, 0.1),
    ("think through", "reasoning", 1.5, 0.05),
    ("r -> r", "math", 2.0, 0.2),
    ("for all real", "math", 1.5, 0.2),
    ("pros and cons", "analysis", 2.0, 0.0),
    ("in simple terms", "", 0.0, -0.1),
    ("in one sentence", "", 0.0, -0.1),
    ("in one paragraph", "", 0.0, -0.08),
    ("how do i", "", 0.0, -0.06),
    ("what is", "", 0.0, -0.03),
)

# ... and words that make it easier.
EASY_WORDS = """
    simple:0.08 simply:0.05 quickly:0.06 briefly:0.06 brief:0.05 short:0.05 one:0.02 word:0.04
    just:0.04 only:0.03 basic:0.08 easy:0.08 beginner:0.08 eli5:0.1 tldr:0.05 sentence:0.04 yes:0.05 no:0.02
    sencillo:0.08 simple:0.08 rápido:0.06 breve:0.06 rapide:0.06 bref:0.06 einfach:0.08 kurz:0.06 schnell:0.06
    simples:0.08 rápida:0.06 semplice:0.08 veloce:0.06 просто:0.08 кратко:0.06
"""

# Chinese, Japanese and Korean: no spaces between words, so these are looked for as substrings.
CJK_TASKS: dict[str, tuple[str, ...]] = {
    "chat": ("你好", "谢谢", "こんにちは", "ありがとう", "안녕", "감사"),
    "factual_qa": ("是谁", "什么时候", "在哪里", "首都", "いつ", "どこ", "誰", "수도", "언제"),
    "summarise": ("总结", "摘要", "概括", "要約", "まとめ", "요약"),
    "extract": ("提取", "抽出", "发票", "請求書", "추출"),
    "classify": ("分类", "情感", "分類", "感情", "분류"),
    "translate": ("翻译", "译成", "翻訳", "訳して", "번역"),
    "rewrite": ("改写", "润色", "重写", "書き直", "言い換え", "校正", "다시 작성"),
    "code": ("代码", "函数", "编程", "コード", "関数", "プログラム", "코드", "함수"),
    "math": ("证明", "方程", "积分", "概率", "計算", "証明", "方程式", "確率", "증명", "방정식"),
    "reasoning": ("为什么", "推理", "谜题", "なぜ", "推論", "왜"),
    "creative": ("诗", "故事", "口号", "詩", "物語", "キャッチコピー", "시를", "이야기", "博客", "文案", "写一篇"),
    "analysis": ("分析", "比较", "評価", "比較", "분석", "비교"),
}
CJK_HARD: dict[str, float] = {
    "证明": 0.4, "証明": 0.4, "증명": 0.4, "架构": 0.15, "分布式": 0.2, "分散": 0.15, "并发": 0.2, "一致性": 0.12,
    "风险": 0.08, "リスク": 0.08, "决策": 0.1, "框架": 0.08, "隐含": 0.1, "权衡": 0.15, "故障": 0.08, "严格": 0.1,
    "設計": 0.06, "设计": 0.06, "战略": 0.08, "戦略": 0.08, "积分": 0.1, "概率": 0.08,
}  # fmt: skip


def weighted(text: str) -> dict[str, float]:
    """`word:weight word ...` -> {word: weight, stem: weight} (a weight of 1 when none is written)."""
    table: dict[str, float] = {}
    stems: dict[str, float] = {}
    for item in text.split():
        word, _, weight = item.partition(":")
        value = float(weight) if weight else 1.0
        exact = word.endswith("!")
        word = word.rstrip("!")
        table[word] = max(value, table.get(word, 0.0))
        if not exact and len(word) > STEM:
            stems.setdefault(word[:STEM], value)
    for stem, value in stems.items():
        table.setdefault(stem, value)
    return table
