"""Secrets out, everything else byte for byte as it was."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from indexer_pipeline.config import SAMPLE_CORPUS
from indexer_pipeline.redaction import redact

from .conftest import PLANTED_SECRET
from .planted_secrets import NEGATIVES, PLANTED

KEYS = {
    "openai_key": [
        PLANTED_SECRET,
        "sk-0123456789abcdefABCDEF0123456789abcdefABCDEF01",
        "sk-ant-api03-Zx9_Yw8-Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe",
    ],
    "github_token": [
        "ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
        "gho_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
        "ghs_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
        "ghu_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
        "github_pat_11AAAAAAA0aBcDeFgHiJkLmN_oPqRsTuVwXyZ0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJK",
    ],
    "aws_access_key": ["AKIAIOSFODNN7EXAMPLE", "ASIAY34FZKBOKMUTVV7A"],
}


@pytest.mark.parametrize("kind, secret", [(k, s) for k, values in KEYS.items() for s in values])
def test_keys_are_recognised_by_their_shape_anywhere(kind, secret):
    text, count = redact(f"it failed with {secret}, see the log")
    assert text == f"it failed with [REDACTED:{kind}], see the log" and count == 1


@pytest.mark.parametrize(
    "line, kept, secret",
    [
        ("OPENAI_API_KEY=" + PLANTED_SECRET, "OPENAI_API_KEY=", PLANTED_SECRET),
        ("export STRIPE_SECRET=whsec_9fK2mQ7xL4pR8tV1", "export STRIPE_SECRET=", "whsec_9fK2mQ7xL4pR8tV1"),
        ("export SLACK_TOKEN='tok3n-v4lue-8823'", "export SLACK_TOKEN='", "tok3n-v4lue-8823"),
        ("DB_PASSWORD=correct-horse-battery-9", "DB_PASSWORD=", "correct-horse-battery-9"),
        ("password: hunter22", "password: ", "hunter22"),
        ("  Private_Key: Zm9vYmFyYmF6cXV4", "  Private_Key: ", "Zm9vYmFyYmF6cXV4"),
        ('{"api_key": "abcd1234efgh5678"}', '{"api_key": "', "abcd1234efgh5678"),
        ("Database_Password = 's3cr3t-Pa55'", "Database_Password = '", "s3cr3t-Pa55"),
        (
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "aws_secret_access_key = ",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ),
        (
            'curl -H "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl"',
            'curl -H "Authorization: Bearer ',
            "eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl",
        ),
    ],
)
def test_assignments_keep_the_name_and_lose_the_value(line, kept, secret):
    text, count = redact(line)
    assert count == 1 and secret not in text
    assert text.startswith(kept + "[REDACTED:")


def test_the_bearer_scheme_stays():
    text, count = redact("Authorization: Bearer 0a1b2c3d4e5f6a7b8c9d0e1f2a3b")
    assert (text, count) == ("Authorization: Bearer [REDACTED:bearer_token]", 1)


@pytest.mark.parametrize("text", NEGATIVES)
def test_ordinary_prose_code_and_ids_are_untouched(text):
    assert redact(text) == (text, 0)


def test_every_secret_is_counted_once_and_a_second_pass_changes_nothing():
    secrets = [s for values in KEYS.values() for s in values]
    text = "\n".join(f"line {i}: TOKEN={s} and again {s}" for i, s in enumerate(secrets))
    once, count = redact(text)
    assert count == 2 * len(secrets)
    assert not any(s in once for s in secrets)
    assert redact(once) == (once, 0)


def test_the_planted_secret_of_the_sample_corpus_goes():
    for path in SAMPLE_CORPUS.rglob("*"):
        if path.is_file():
            text, _ = redact(path.read_text(encoding="utf-8", errors="replace"))
            assert "FAKEfakeFAKE" not in text, path


@pytest.mark.parametrize("shape, text, secrets", PLANTED, ids=[p[0] for p in PLANTED])
def test_every_planted_shape_loses_its_secret(shape, text, secrets):
    redacted, count = redact(text)
    assert [s for s in secrets.split(" ") if s in redacted] == [] and count >= 1, redacted


# Inputs a backtracking pattern would take hours on; each alternative must stay linear.
PATHOLOGICAL = [
    "a-" * 100_000, "x_" * 100_000, "sk-" * 60_000, "A" * 200_000, "=" * 200_000, "eyJ" * 60_000,
    "://a:" * 50_000, "://" + "a:" * 100_000, "://a:" + "@" * 200_000, "mysql " * 50_000,
    "mysql -u" + " a" * 100_000, "-u a:" * 50_000, "--password " * 20_000, "--token" + " " * 200_000,
    'password: \\"' * 20_000, "password='" * 20_000, "DB_PASS=" * 30_000, "Authorization: Bearer " * 10_000,
]  # fmt: skip


def test_pathological_input_finishes_within_a_bound():
    # In a child process, so a regression fails the test at the timeout instead of hanging CI.
    script = (
        "import json, sys\n"
        "from indexer_pipeline.redaction import redact\n"
        "for text in json.load(sys.stdin):\n"
        "    redact(text)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], input=json.dumps(PATHOLOGICAL), text=True, timeout=20, check=False
    )
    assert done.returncode == 0
