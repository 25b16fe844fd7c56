"""Secrets in the shapes real conversations and notes carry them, and ordinary text that holds none.

`PLANTED` is (shape, text as it appears, the secret value that must not survive redaction). Every
value is distinct and unlike ordinary text, so "leaked" is a plain substring test. `NEGATIVES` is code
and prose a redactor should leave alone (a false positive there costs search text, not safety).
The redaction tests, the everywhere-test and benchmarks/bench_redaction.py all use these lists.
"""

from __future__ import annotations

import json

OPENAI_KEY = "sk-proj-Pl4ntedOpenAIkey0000EXAMPLEexampleNOTaREALkey0123456789"

_ENV_FILE = """\
# .env pasted into a message
NODE_ENV=production
DATABASE_URL=postgresql://envuser:Env1PlantedPw@db.internal:5432/app
REDIS_URL=rediss://default:Env2PlantedPw@cache.internal:6380
SECRET_KEY=Env3PlantedSecretKey
JWT_SECRET="Env4PlantedJwtSecret"
STRIPE_SECRET_KEY=sk_live_Env5PlantedStripe0000abcd
SMTP_PASS=Env6PlantedPw
MAILER_PWD=Env7PlantedPw
"""

PLANTED: list[tuple[str, str, str]] = [
    # connection strings, every common scheme
    ("postgresql url", "postgresql://app_user:Pg1PlantedPw@db.internal:5432/app", "Pg1PlantedPw"),
    ("postgres url", "DATABASE_URL=postgres://app_user:Pg2PlantedPw@localhost/app", "Pg2PlantedPw"),
    ("postgresql+driver url", 'engine = create_engine("postgresql+asyncpg://svc:Pg3PlantedPw@10.0.0.5/db")', "Pg3PlantedPw"),
    ("azure user@server url", "postgresql://admin@myserver:Pg4PlantedPw@myserver.postgres.database.azure.com/db", "Pg4PlantedPw"),
    ("password with @ in url", "psql postgresql://app:Pw@5Planted@db/app", "Pw@5Planted"),
    ("short url password", "postgresql://app:Qz9k@db.internal/app", "Qz9k"),
    ("mysql url", "mysql://root:My1PlantedPw@127.0.0.1:3306/shop", "My1PlantedPw"),
    ("mariadb url", "mariadb://root:Ma1PlantedPw@mariadb/shop", "Ma1PlantedPw"),
    ("mongodb url", "mongodb://admin:Mg1PlantedPw@mongo:27017/?authSource=admin", "Mg1PlantedPw"),
    ("mongodb+srv url", "mongodb+srv://cluster-user:Mg2PlantedPw@cluster0.ab1cd.mongodb.net/app", "Mg2PlantedPw"),
    ("redis url, empty user", "redis://:Rd1PlantedPw@cache:6379/0", "Rd1PlantedPw"),
    ("rediss url", "rediss://default:Rd2PlantedPw@redis.upstash.io:6380", "Rd2PlantedPw"),
    ("amqp url", "amqp://guest:Am1PlantedPw@rabbit:5672/", "Am1PlantedPw"),
    ("amqps url", "amqps://svc:Am2PlantedPw@mq.example.com/vhost", "Am2PlantedPw"),
    ("ftp url", "ftp://deploy:Ft1PlantedPw@ftp.example.com/upload", "Ft1PlantedPw"),
    ("sftp url", "sftp://deploy:Sf1PlantedPw@files.example.com:22/", "Sf1PlantedPw"),
    ("smtp url", "smtp://mailer:Sm1PlantedPw@smtp.example.com:587", "Sm1PlantedPw"),
    ("https userinfo", "git clone https://ci-bot:Ht1PlantedPw@git.example.com/org/repo.git", "Ht1PlantedPw"),
    ("jdbc postgresql", "jdbc:postgresql://db:5432/app?user=app&password=Jd1PlantedPw", "Jd1PlantedPw"),
    ("jdbc mysql", "jdbc:mysql://db:3306/app?user=app&password=Jd2PlantedPw&useSSL=true", "Jd2PlantedPw"),
    ("ado.net string", "Server=tcp:x.database.windows.net;Database=y;User Id=z;Password=Ad1PlantedPw;", "Ad1PlantedPw"),
    # assignments: YAML, JSON, env, TOML, code
    ("yaml single-quoted", "  password: 'Ya1PlantedPw'", "Ya1PlantedPw"),
    ("yaml double-quoted, capital", '  Password: "Ya2PlantedPw"', "Ya2PlantedPw"),
    ("yaml unquoted", "db_password: Ya3PlantedPw", "Ya3PlantedPw"),
    ("yaml short quoted", "  password: 'k9x'", "k9x"),
    ("yaml api key", "api_key: Ya4PlantedKey0987", "Ya4PlantedKey0987"),
    ("json password", '{"user": "app", "password": "Js1PlantedPw"}', "Js1PlantedPw"),
    ("json camelCase key", '{"apiKey": "Js2PlantedKey0987"}', "Js2PlantedKey0987"),
    ("json client secret", '"client_secret": "Js3PlantedSecret"', "Js3PlantedSecret"),
    ("json access token", '"access_token": "Js4PlantedToken"', "Js4PlantedToken"),
    ("json inside a json string", json.dumps({"content": '{"password": "Es1PlantedPw"}'}), "Es1PlantedPw"),
    ("json-escaped env line", json.dumps({"content": 'DB_PASSWORD="Es2PlantedPw"\nNEXT=1'}), "Es2PlantedPw"),
    ("json escaped twice", json.dumps({"input": json.dumps({"content": '{"password": "Es3PlantedPw"}'})}), "Es3PlantedPw"),
    ("key after an escaped newline", json.dumps({"content": "TOKENS\nghp_Pl4nted1GitHubToken00000000000000000"}), "ghp_Pl4nted1GitHubToken00000000000000000"),
    ("env password", "DB_PASSWORD=En1PlantedPw", "En1PlantedPw"),
    ("env _PASS", "DB_PASS=En2PlantedPw", "En2PlantedPw"),
    ("env export", "export API_TOKEN=En3PlantedToken", "En3PlantedToken"),
    ("toml double-quoted", 'password = "To1PlantedPw"', "To1PlantedPw"),
    ("toml single-quoted", "token = 'To2PlantedToken'", "To2PlantedToken"),
    ("python keyword argument", 'client = OpenAI(api_key="Py1PlantedKey0987")', "Py1PlantedKey0987"),
    ("python connect", 'psycopg2.connect(host="db", password="Py2PlantedPw")', "Py2PlantedPw"),
    (".env file pasted", _ENV_FILE, "Env1PlantedPw Env2PlantedPw Env3PlantedSecretKey Env4PlantedJwtSecret Env5PlantedStripe0000abcd Env6PlantedPw Env7PlantedPw"),
    # tool arguments and shell commands
    ("cline execute_command", "<execute_command>\n<command>PGPASSWORD=Xm1PlantedPw psql -h db -U app</command>\n</execute_command>", "Xm1PlantedPw"),
    ("mysql -p", "mysql -u root -pCl2PlantedPw shop < dump.sql", "Cl2PlantedPw"),
    ("curl -u", "curl -u admin:Cl3PlantedPw https://api.example.com/v1/items", "Cl3PlantedPw"),
    ("--password flag", "pg_dump --password Cl4PlantedPw app > app.sql", "Cl4PlantedPw"),
    ("--token= flag", "gh auth login --token=Cl5PlantedToken", "Cl5PlantedToken"),
    # headers
    ("bearer header", "Authorization: Bearer Hd1PlantedBearerToken99", "Hd1PlantedBearerToken99"),
    ("basic header", "Authorization: Basic dXNlcjpIZDJQbGFudGVk", "dXNlcjpIZDJQbGFudGVk"),
    ("x-api-key header", "X-API-Key: Hd3PlantedApiKey0987", "Hd3PlantedApiKey0987"),
    # keys known by their shape
    ("openai key", f"the key is {OPENAI_KEY}", OPENAI_KEY),
    ("github token", "ghp_Pl4nted0GitHubToken00000000000000000", "ghp_Pl4nted0GitHubToken00000000000000000"),
    ("gitlab token", "glpat-Pl4ntedGitLab0000000", "glpat-Pl4ntedGitLab0000000"),
    ("aws access key", "AKIAPL4NTED000000000", "AKIAPL4NTED000000000"),
    ("aws secret key", "aws_secret_access_key = Pl4ntedAwsSecret/K7MDENG/bPxRfiCYEXAMPLE", "Pl4ntedAwsSecret/K7MDENG/bPxRfiCYEXAMPLE"),
    ("slack token", "xoxb-1234567890-Pl4ntedSlackToken", "xoxb-1234567890-Pl4ntedSlackToken"),
    ("stripe key", "sk_live_Pl4ntedStripeKey000000", "sk_live_Pl4ntedStripeKey000000"),
    ("google api key", "AIzaPl4ntedGoogleKey00000000000000000000", "AIzaPl4ntedGoogleKey00000000000000000000"),
    ("npm token", "//registry.npmjs.org/:_authToken=npm_Pl4ntedNpmToken000000000000000000000", "npm_Pl4ntedNpmToken000000000000000000000"),
    ("hugging face token", "HF token hf_Pl4ntedHuggingFaceTokenAbcdefghijk", "hf_Pl4ntedHuggingFaceTokenAbcdefghijk"),
    ("sendgrid key", "SG.Pl4ntedSendGrid00000A.Pl4ntedSendGridSecret000000000000000000000", "SG.Pl4ntedSendGrid00000A.Pl4ntedSendGridSecret000000000000000000000"),
    ("jwt", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJQbDRudGVkIn0.Pl4ntedJwtSignature", "eyJzdWIiOiJQbDRudGVkIn0"),
    ("pem private key", "-----BEGIN RSA PRIVATE KEY-----\nMIIEPl4ntedPemBody0000\n-----END RSA PRIVATE KEY-----", "MIIEPl4ntedPemBody0000"),
]  # fmt: skip

NEGATIVES: list[str] = [
    "Reset your password from the settings page; the key is in the drawer.",
    "API_KEY=<your-key>  TOKEN=${GITHUB_TOKEN}  PASSWORD=$DB_PASSWORD  SECRET=",
    '{"api_key": ""}  password: ""',
    "max_tokens=5000 and sort_key: created",
    "client = OpenAI(api_key=api_key)\ntoken = os.environ['GITHUB_TOKEN']",
    "commit 3f2a9c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39 and task 5528dbd6-d7dc-4d52-884c-abe5a78e2c31",
    "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "We use sk-learn and risk-management-framework-guidelines-for-2024 daily.",
    "def key(provider, model):\n    return hashlib.sha256(model.encode()).hexdigest()",
    "Bearer tokens are checked by the gateway.",
    "def login(username: str, password: str) -> bool:",
    "password: Optional[str] = None",
    "if password != confirm_password:\n    raise ValueError('Passwords do not match')",
    "const [password, setPassword] = useState('');",
    '<input type="password" name="password" placeholder="Password">',
    "Password must be at least 8 characters long.",
    "token_count = len(tokens)  # tokens: list[int]",
    "git@github.com:org/repo.git and ssh://git@github.com/org/repo",
    "Open http://localhost:3000/api/items?next=/home#top in the browser.",
    "Write to mail@example.com or see https://docs.example.com:8443/guide/setup.html",
    "postgresql://localhost:5432/app is the default DSN (no credentials).",
    'image: "postgres:16-alpine"\nports:\n  - "5432:5432"',
    "mkdir -p build/output && cp -r src build/",
    "git push -u origin main",
    "The session token expires after 15 minutes; refresh it with the refresh_token grant.",
    "docker pull ghcr.io/org/app@sha256:9b2f1c0d8e7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c",
    '"integrity": "sha512-Wq0a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6q7r8s9t0u1v2w3x4y5z6A7B8C9D0E1F2"',
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
    'self.secret_manager = SecretManager(region="eu-west-1")',
    "export PATH=$HOME/.local/bin:$PATH",
    "| key | value |\n|-----|-------|\n| timeout | 30 |",
    "password_reset_url = reverse('password_reset')",
    "The `token` field holds the user's id; `secret` is the name of the Kubernetes object.",
    "auth: { strategy: 'jwt', session: true }",
    "from django.contrib.auth.hashers import make_password",
]
