"""The search benchmark's corpus and labelled queries, generated (seeded) so the benchmark builds them itself.

Roo Code task folders: every task is one of 20 topics (a memory leak, a slow query, a flaky test…) in one
of 50 services whose names share words (billing-api, billing-worker…), so 50 tasks share each topic and
only the service, an identifier or an error's details tell them apart: top 5 is a real test. About one
task in eight is written in French. Beside them, a tree of runbooks and postmortems, one file (one unit)
each, titled "<service> runbook: <topic>" — the lexical queries that dense search alone missed in issue 11.

Queries, each with the units it must find (grade 2: the answer; 1: also relevant): paraphrases (the
topic in other words, plus the service), exact identifiers (a class name alone), file names, error
strings pasted as is, runbook look-ups, queries that must find nothing, French queries against English
conversations and English queries against French ones.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass, field
from pathlib import Path

SERVICES = [
    f"{a}-{b}"
    for a in (
        "billing",
        "orders",
        "payments",
        "inventory",
        "shipping",
        "auth",
        "search",
        "catalog",
        "pricing",
        "notify",
    )
    for b in ("api", "worker", "gateway", "service", "scheduler")
]

# slug, noun (for class names), the task in English, the fix, an error line ({n}: numbers unique per
# task), a paraphrase in English without the task's own words, the same in French, the task in French,
# the fix in French, a runbook title.
TOPICS = [
    (
        "memory-leak",
        "Leak",
        "{svc} memory grows from 200 MB to 2 GB over a day until the container is OOM-killed",
        "a listener is registered per request and never removed, so closures pile up on the heap",
        "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory (pid {n})",
        "{svc} keeps eating RAM until the process gets killed",
        "{svc} consomme de plus en plus de RAM jusqu'à ce que le processus soit tué",
        "La mémoire de {svc} passe de 200 Mo à 2 Go en une journée puis le conteneur est tué par OOM",
        "un écouteur est ajouté à chaque requête sans jamais être retiré",
        "heap growth and OOM kills",
    ),
    (
        "slow-query",
        "QueryPlanner",
        "{svc} dashboard query takes 14 seconds on Postgres",
        "the OR across two columns defeats the index; a composite index on (customer_id, created_at) fixes it",
        "ERROR: canceling statement due to statement timeout (query id {n})",
        "why is the {svc} report so sluggish to load from the database",
        "pourquoi le rapport de {svc} est si lent à charger depuis la base de données",
        "La requête du tableau de bord de {svc} prend 14 secondes sur Postgres",
        "un index composite sur (customer_id, created_at) corrige le plan",
        "slow SQL and missing indexes",
    ),
    (
        "flaky-test",
        "OrderingTest",
        "test_export in {svc} fails in CI one run in five but never locally",
        "iterating a set gives an order that depends on PYTHONHASHSEED; sorting the names fixes it",
        "AssertionError: expected 'ana;ben' got 'ben;ana' (run {n})",
        "{svc} unit test is intermittent on the build server but green on my laptop",
        "le test unitaire de {svc} échoue de façon intermittente sur le serveur de build mais passe sur mon poste",
        "test_export de {svc} échoue une fois sur cinq en CI mais jamais en local",
        "l'ordre d'un set dépend de PYTHONHASHSEED ; trier les noms corrige le test",
        "flaky tests in CI",
    ),
    (
        "crashloop",
        "StartupProbe",
        "{svc} pods go into CrashLoopBackOff after the Spring Boot 3 upgrade",
        "the liveness probe kills the slow-starting JVM; a startupProbe gives it time",
        "Liveness probe failed: Get http://10.42.{n}:8080/actuator/health: connection refused",
        "kubernetes restarts {svc} over and over since we bumped the framework version",
        "kubernetes redémarre {svc} sans arrêt depuis la mise à jour du framework",
        "Les pods de {svc} passent en CrashLoopBackOff après la mise à jour vers Spring Boot 3",
        "la sonde liveness tue la JVM trop lente à démarrer ; une startupProbe règle le problème",
        "pods restarting in a loop",
    ),
    (
        "docker-size",
        "ImageBuilder",
        "{svc} Docker image is 1.9 GB and slow to push",
        "a multi-stage build with python:3.12-slim and wheels built in a builder stage brings it to 200 MB",
        "failed to push: blob upload unknown, layer sha256:{n} exceeds quota",
        "shrink the {svc} container so deployments ship faster",
        "réduire la taille du conteneur de {svc} pour déployer plus vite",
        "L'image Docker de {svc} fait 1,9 Go et met longtemps à être poussée",
        "un build multi-étapes avec python:3.12-slim ramène l'image à 200 Mo",
        "container image size",
    ),
    (
        "ci-setup",
        "Workflow",
        "set up GitHub Actions for {svc}: ruff, pytest on Python 3.10 to 3.13, coverage",
        "a matrix job over python-version with fail-fast off and a pip cache keyed on pyproject.toml",
        "Error: Process completed with exit code {n}. (job test-matrix)",
        "automated checks on every pull request for {svc} across interpreter versions",
        "des vérifications automatiques sur chaque pull request de {svc} pour plusieurs versions de l'interpréteur",
        "mettre en place GitHub Actions pour {svc} : ruff, pytest sur Python 3.10 à 3.13, couverture",
        "une matrice sur python-version, fail-fast désactivé, cache pip",
        "continuous integration",
    ),
    (
        "rate-limit",
        "RetryPolicy",
        "{svc} gets 429 Too Many Requests from the carrier API under load",
        "honour Retry-After and add exponential backoff with jitter, capped at 60 seconds",
        "HTTPError: 429 Client Error: Too Many Requests for url: https://api.example/v2/rates?req={n}",
        "the upstream provider throttles {svc} when traffic peaks",
        "le fournisseur en amont limite {svc} quand le trafic augmente",
        "{svc} reçoit des 429 Too Many Requests de l'API du transporteur sous charge",
        "respecter Retry-After et ajouter un backoff exponentiel avec gigue",
        "upstream throttling",
    ),
    (
        "migration",
        "ColumnMigration",
        "add a NOT NULL due_date column to the 40M-row table of {svc} without locking",
        "add it nullable, backfill in batches of 10k, then a CHECK NOT VALID and VALIDATE",
        "ERROR: canceling statement due to lock timeout on relation invoices_{n}",
        "introduce a mandatory field on a huge {svc} table with zero downtime",
        "ajouter un champ obligatoire sur une énorme table de {svc} sans interruption de service",
        "ajouter une colonne due_date NOT NULL à la table de 40 millions de lignes de {svc} sans verrou",
        "l'ajouter nullable, la remplir par lots, puis CHECK NOT VALID et VALIDATE",
        "schema migrations",
    ),
    (
        "tls-expired",
        "CertRenewer",
        "{svc} calls fail with certificate has expired since this morning",
        "cert-manager could not renew because the ACME HTTP-01 challenge was blocked by the ingress",
        "ssl.SSLCertVerificationError: certificate verify failed: certificate has expired (serial {n})",
        "{svc} refuses secure connections because its HTTPS credentials are out of date",
        "{svc} refuse les connexions sécurisées car ses identifiants HTTPS sont périmés",
        "Les appels à {svc} échouent avec certificate has expired depuis ce matin",
        "cert-manager n'a pas pu renouveler car le challenge HTTP-01 était bloqué",
        "certificate expiry",
    ),
    (
        "deadlock",
        "LockOrdering",
        "{svc} transactions abort with deadlock detected under concurrent updates",
        "two code paths lock the rows in opposite orders; locking by ascending id removes the cycle",
        "psycopg2.errors.DeadlockDetected: deadlock detected DETAIL: Process {n} waits for ShareLock",
        "two concurrent writers in {svc} block each other and the database kills one",
        "deux écritures concurrentes dans {svc} se bloquent mutuellement et la base en tue une",
        "Les transactions de {svc} échouent avec deadlock detected lors de mises à jour concurrentes",
        "deux chemins verrouillent les lignes dans des ordres opposés",
        "database deadlocks",
    ),
    (
        "stale-cache",
        "CacheInvalidator",
        "{svc} keeps serving old prices for ten minutes after a change",
        "the Redis key does not include the discount version; adding it invalidates on change",
        "WARN cache hit for key rates:v1:{n} older than the discount update",
        "customers of {svc} see outdated values long after we edited them",
        "les clients de {svc} voient des valeurs obsolètes longtemps après modification",
        "{svc} continue de servir les anciens prix pendant dix minutes après un changement",
        "la clé Redis n'inclut pas la version de la remise",
        "cache invalidation",
    ),
    (
        "dst-bug",
        "ScheduleClock",
        "{svc} jobs ran twice on the night the clocks changed",
        "the scheduler stored local times; storing UTC and converting at display fixes daylight saving",
        "DuplicateRunError: job nightly-{n} already ran at 02:30 local time",
        "{svc} fired its nightly batch two times when summer time started",
        "{svc} a lancé son traitement nocturne deux fois lors du passage à l'heure d'été",
        "les tâches de {svc} ont tourné deux fois la nuit du changement d'heure",
        "le planificateur stockait des heures locales ; stocker en UTC corrige le problème",
        "daylight saving time",
    ),
    (
        "cors",
        "CorsMiddleware",
        "browser blocks calls from the new frontend to {svc}",
        "the preflight OPTIONS request is not answered; allow the origin and the Authorization header",
        "Access to fetch at 'https://{svc}.internal/v{n}' has been blocked by CORS policy",
        "the web app cannot reach {svc} because of cross-origin restrictions",
        "l'application web n'arrive pas à joindre {svc} à cause des restrictions cross-origin",
        "le navigateur bloque les appels du nouveau frontend vers {svc}",
        "la requête preflight OPTIONS n'a pas de réponse ; autoriser l'origine",
        "cross-origin requests",
    ),
    (
        "gc-pauses",
        "HeapTuning",
        "{svc} has 3-second stop-the-world pauses every few minutes",
        "the old generation fills with a large cache; G1 with a bigger region size and a smaller cache fixes it",
        "GC pause (G1 Evacuation Pause) (young) {n}M->3100M(4096M) 3012.4ms",
        "{svc} freezes for seconds at a time while the JVM cleans up",
        "{svc} se fige plusieurs secondes pendant que la JVM fait le ménage",
        "{svc} a des pauses stop-the-world de 3 secondes toutes les quelques minutes",
        "le cache remplit l'ancienne génération ; G1 et un cache plus petit corrigent",
        "garbage collection",
    ),
    (
        "kafka-lag",
        "ConsumerGroup",
        "the {svc} Kafka consumer falls hours behind after a deploy",
        "max.poll.interval.ms was exceeded by slow handlers, causing endless rebalances",
        "CommitFailedException: offset commit failed for partition events-{n}, group rebalanced",
        "{svc} is processing the event stream far behind real time",
        "{svc} traite le flux d'événements avec des heures de retard",
        "le consommateur Kafka de {svc} prend des heures de retard après un déploiement",
        "max.poll.interval.ms dépassé par des traitements lents, d'où des rééquilibrages",
        "consumer lag",
    ),
    (
        "disk-full",
        "LogRotation",
        "{svc} node ran out of disk because logs were never rotated",
        "logrotate was not installed in the image; rotating daily with compression keeps 7 days",
        "OSError: [Errno 28] No space left on device: '/var/log/app-{n}.log'",
        "the {svc} machine has no storage left and writes fail",
        "la machine de {svc} n'a plus d'espace de stockage et les écritures échouent",
        "le nœud de {svc} n'a plus de disque car les logs ne sont jamais archivés",
        "logrotate absent de l'image ; une rotation quotidienne compressée garde 7 jours",
        "disk space",
    ),
    (
        "null-ref",
        "PayloadParser",
        "{svc} crashes with TypeError on orders without a shipping address",
        "the parser assumed address was always present; an explicit None check and a 422 fix it",
        "TypeError: Cannot read properties of undefined (reading 'postcode') at line {n}",
        "{svc} blows up when an incoming record lacks an optional field",
        "{svc} plante quand un enregistrement reçu n'a pas un champ optionnel",
        "{svc} plante avec TypeError sur les commandes sans adresse de livraison",
        "le parseur supposait l'adresse toujours présente ; un test explicite corrige",
        "missing fields",
    ),
    (
        "bundle-size",
        "ChunkSplitter",
        "the {svc} admin page takes 9 seconds to load on mobile",
        "the JavaScript bundle is 4 MB; route-based code splitting and dropping moment.js cut it to 600 kB",
        "Warning: asset size limit: main.{n}.js (4.1 MiB) exceeds the recommended limit",
        "the {svc} web console is painfully slow to open on phones",
        "la console web de {svc} est très lente à s'ouvrir sur téléphone",
        "la page d'administration de {svc} met 9 secondes à charger sur mobile",
        "le bundle JavaScript fait 4 Mo ; le découpage par route le réduit",
        "frontend performance",
    ),
    (
        "jwt-expiry",
        "TokenRefresher",
        "users of {svc} are logged out every hour with 401 invalid token",
        "the refresh token was not rotated and clock skew made tokens look expired; 60 s leeway fixes it",
        "jwt.exceptions.ExpiredSignatureError: Signature has expired (token id {n})",
        "people get kicked out of {svc} sessions regularly",
        "les utilisateurs de {svc} sont déconnectés régulièrement de leur session",
        "les utilisateurs de {svc} sont déconnectés toutes les heures avec 401 invalid token",
        "le jeton de rafraîchissement n'était pas renouvelé ; une tolérance de 60 s corrige",
        "authentication sessions",
    ),
    (
        "cron-twice",
        "JobLock",
        "the {svc} invoice cron sends every email twice since we scaled to two replicas",
        "each replica runs the cron; a Postgres advisory lock lets only one run it",
        "IntegrityError: duplicate key value violates unique constraint email_log_pkey (id {n})",
        "{svc} scheduled mailing goes out in duplicate after adding a second instance",
        "l'envoi planifié de {svc} part en double depuis l'ajout d'une seconde instance",
        "le cron de facturation de {svc} envoie chaque e-mail deux fois depuis le passage à deux réplicas",
        "chaque réplica lance le cron ; un verrou consultatif Postgres n'en laisse qu'un",
        "duplicate jobs",
    ),
]
NONE_QUERIES = [
    "how to bake sourdough bread at home",
    "best hiking trails in the Dolomites in autumn",
    "pairing bluetooth headphones with a car stereo",
    "knitting pattern for a wool scarf",
    "quarterly VAT return deadline for freelancers",
    "how to prune tomato plants",
    "recette de la tarte tatin",
    "wedding speech ideas for a best man",
    "train tickets from Lyon to Turin",
    "how many calories in a banana",
    "learn to play the ukulele chords",
    "repotting an orchid",
    "history of the Byzantine empire",
    "choosing running shoes for flat feet",
    "how to fold a fitted sheet",
    "meilleure période pour visiter la Corse",
    "watercolor techniques for skies",
    "chess opening for beginners",
    "how to descale a coffee machine",
    "birdwatching binoculars 8x42 or 10x42",
]


def _camel(svc: str) -> str:
    return "".join(part.capitalize() for part in svc.split("-"))


@dataclass
class Task:
    id: str
    svc: str
    topic: tuple
    lang: str
    ident: str  # a class name found nowhere else
    file: str
    error: str
    unit: str = field(init=False)

    def __post_init__(self):
        self.unit = f"task-{self.id}"


@dataclass
class Query:
    query: str
    units: dict[str, int]
    kind: str
    lang: str = "en"

    def as_json(self) -> dict:
        return {"query": self.query, "units": self.units, "kind": self.kind, "lang": self.lang}


def _messages(t: Task) -> list[tuple[str, str]]:
    slug, _, title, fix, *_rest = t.topic
    user_fr, fix_fr = t.topic[7], t.topic[8]
    if t.lang == "fr":
        return [
            ("user", f"<task>\n{user_fr.format(svc=t.svc)}. Voici l'erreur :\n{t.error}\n</task>"),
            ("assistant", f"Je regarde le fichier concerné.\n<read_file><path>{t.file}</path></read_file>"),
            ("user", f"[read_file for '{t.file}'] Result:\nclass {t.ident}:\n    ...\n"),
            ("assistant", f"Cause trouvée : {fix_fr}. J'ai modifié {t.ident} dans {t.file}."),
            ("user", "<feedback>Merci, ça marche en préproduction.</feedback>"),
        ]
    return [
        ("user", f"<task>\n{title.format(svc=t.svc)}. The logs show:\n{t.error}\n</task>"),
        ("assistant", f"Let me read the code involved.\n<read_file><path>{t.file}</path></read_file>"),
        ("user", f"[read_file for '{t.file}'] Result:\nclass {t.ident}:\n    ...\n"),
        ("assistant", f"Found it: {fix}. I changed {t.ident} in {t.file}."),
        ("user", f"[apply_diff for '{t.file}'] Result:\nChanges successfully applied to {t.file}."),
        (
            "assistant",
            f"<attempt_completion><result>{title.format(svc=t.svc)}: fixed, {fix}.</result></attempt_completion>",
        ),
    ]


def _write_task(tasks_dir: Path, t: Task, ts: int) -> None:
    folder = tasks_dir / t.id
    folder.mkdir(parents=True)
    history = [
        {"role": role, "content": [{"type": "text", "text": text}], "ts": ts + i * 1000}
        for i, (role, text) in enumerate(_messages(t))
    ]
    (folder / "api_conversation_history.json").write_text(json.dumps(history), encoding="utf-8")
    title = (t.topic[7] if t.lang == "fr" else t.topic[2]).format(svc=t.svc)
    item = {"id": t.id, "ts": ts, "task": title, "workspace": f"/home/dev/src/{t.svc}", "mode": "debug"}
    (folder / "history_item.json").write_text(json.dumps(item), encoding="utf-8")


def build(root: Path, tasks: int = 1000, docs: int = 120, seed: int = 11) -> list[Query]:
    """Write the corpus under root/roo (a task store) and root/handbook (a tree); return the labelled queries."""
    rng = random.Random(seed)
    pairs = [(svc, topic) for topic in TOPICS for svc in SERVICES]
    rng.shuffle(pairs)
    made: list[Task] = []
    for i in range(tasks):
        svc, topic = pairs[i % len(pairs)]
        suffix = "" if i < len(pairs) else str(i // len(pairs))
        n = rng.randrange(10_000, 99_999)
        made.append(
            Task(
                id=str(uuid.UUID(int=rng.getrandbits(128))),
                svc=svc,
                topic=topic,
                lang="fr" if rng.random() < 0.125 else "en",
                ident=f"{_camel(svc)}{topic[1]}{suffix}",
                file=f"{svc}/src/{topic[0].replace('-', '_')}{suffix}.py",
                error=topic[4].format(n=n, svc=svc),
            )
        )
    tasks_dir = root / "roo" / "tasks"
    for i, t in enumerate(made):
        _write_task(tasks_dir, t, 1_750_000_000_000 + i * 60_000)

    # runbooks and postmortems, one file per (service, topic) for a sample of the tasks
    handbook = root / "handbook"
    handbook.mkdir(parents=True)
    doc_of: dict[tuple[str, str], str] = {}
    for t in rng.sample([t for t in made if t.lang == "en"], docs):
        kind = rng.choice(("runbook", "postmortem"))
        name = f"{kind}-{t.svc}-{t.topic[0]}.md"
        (handbook / name).write_text(
            f"# {t.svc} {kind}: {t.topic[9]}\n\nWhen {t.topic[2].format(svc=t.svc)}, check the dashboards of "
            f"{t.svc} first.\n\n## What we learned\n\nThe cause was that {t.topic[3]}.\n",
            encoding="utf-8",
        )
        doc_of[(t.svc, t.topic[0])] = f"doc-{name}"

    def unit_of(t: Task) -> dict[str, int]:
        units = {t.unit: 2}
        if (t.svc, t.topic[0]) in doc_of:
            units[doc_of[(t.svc, t.topic[0])]] = 1
        return units

    first = {}  # only the first task of a (service, topic) pair has a unique paraphrase
    for t in made:
        first.setdefault((t.svc, t.topic[0]), t)
    unique = [t for t in first.values()]
    en = [t for t in unique if t.lang == "en"]
    fr = [t for t in unique if t.lang == "fr"]
    queries: list[Query] = []
    queries += [Query(t.topic[5].format(svc=t.svc), unit_of(t), "paraphrase") for t in rng.sample(en, 60)]
    queries += [Query(t.ident, {t.unit: 2}, "identifier") for t in rng.sample(made, 40)]
    queries += [Query(t.file, {t.unit: 2}, "file name") for t in rng.sample(made, 30)]
    queries += [Query(t.error, {t.unit: 2}, "error") for t in rng.sample(made, 30)]
    for (svc, slug), unit in rng.sample(sorted(doc_of.items()), 30):
        topic = next(tp for tp in TOPICS if tp[0] == slug)
        kind = unit.split("-", 2)[1]
        queries.append(Query(f"{svc} {kind}: {topic[9]}", {unit: 2, first[(svc, slug)].unit: 1}, "runbook"))
    queries += [Query(q, {}, "none") for q in NONE_QUERIES]
    queries += [
        Query(t.topic[6].format(svc=t.svc), unit_of(t), "paraphrase", "fr→en") for t in rng.sample(en, 40)
    ]
    queries += [
        Query(t.topic[5].format(svc=t.svc), unit_of(t), "paraphrase", "en→fr")
        for t in rng.sample(fr, min(30, len(fr)))
    ]
    return queries
