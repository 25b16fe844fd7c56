"""Redaction measured against detect-secrets, and the speed of redaction and chunking.

    PYTHONPATH=. python benchmarks/bench_redaction.py          # needs `pip install detect-secrets`

Prints, for our patterns (indexer_pipeline/redaction.py) and for detect-secrets 1.5 with all its
default plugins (keyword, basic-auth URL, high-entropy Base64/hex strings, the vendor key detectors):
- recall on the planted set (indexer_pipeline_tests/planted_secrets.py): a shape counts as caught when,
  after every finding is replaced, none of its secret values is left;
- false positives on the negative set of ordinary code and prose (entries with any finding);
- throughput in MB/s on the sample corpus concatenated to a few MB.
Then chunking speed with cl100k (what test_chunking used to print).

The decision these figures support is written in the redaction module's docstring.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from indexer_pipeline import tokenizers
from indexer_pipeline.chunking import chunk_document
from indexer_pipeline.config import SAMPLE_CORPUS
from indexer_pipeline.models import Document
from indexer_pipeline.redaction import redact
from indexer_pipeline_tests.planted_secrets import NEGATIVES, PLANTED


def detect_secrets_values(text: str) -> list[str]:
    """Secret values detect-secrets reports in `text`, scanned as a file's lines (its filters on)."""
    from detect_secrets.core.scan import _process_line_based_plugins  # the per-file scan, on a string

    lines = list(enumerate(text.splitlines(), 1))
    return [
        s.secret_value
        for s in _process_line_based_plugins(lines, filename="conversation.txt")
        if s.secret_value
    ]


def detect_secrets_redact(text: str) -> tuple[str, int]:
    values = sorted(set(detect_secrets_values(text)), key=len, reverse=True)
    for value in values:
        text = text.replace(value, "[REDACTED]")
    return text, len(values)


def both(text: str) -> tuple[str, int]:
    ours, n = redact(text)
    theirs, m = detect_secrets_redact(ours)
    return theirs, n + m


def score(name: str, redactor, corpus: str) -> None:
    missed = [
        shape for shape, text, values in PLANTED if any(v in redactor(text)[0] for v in values.split(" "))
    ]
    false = [text for text in NEGATIVES if redactor(text)[1]]
    start = time.perf_counter()
    redactor(corpus)
    rate = len(corpus.encode()) / (time.perf_counter() - start) / 1e6
    print(
        f"{name:<24} recall {len(PLANTED) - len(missed):>2}/{len(PLANTED)}   false positives "
        f"{len(false):>2}/{len(NEGATIVES)}   {rate:7.2f} MB/s"
    )
    for shape in missed:
        print(f"    missed: {shape}")
    for text in false:
        print(f"    false positive: {text.splitlines()[0][:90]}")


def chunking(tokens: int) -> None:
    text = " ".join(f"Step {i}: the importer retries on timeouts and logs each failure." for i in range(200))
    cut = tokenizers.token_offsets(text)[tokens]
    docs = [Document(f"u:{i}", "u", "a.md", f"{i} {text[:cut]}", {}) for i in range(200)]
    start = time.perf_counter()
    made = sum(len(chunk_document(d, tokenizers.token_offsets, 512, 64)) for d in docs)
    elapsed = time.perf_counter() - start
    print(
        f"chunking {tokens:>4}-token documents with cl100k: {len(docs) / elapsed:6.0f} docs/s ({made} chunks)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=2.0, help="size of the throughput text")
    args = parser.parse_args()
    sample = "\n".join(
        p.read_text(errors="replace") for p in sorted(Path(SAMPLE_CORPUS).rglob("*")) if p.is_file()
    )
    corpus = sample * max(1, int(args.mb * 1e6) // len(sample))
    print(
        f"planted set: {len(PLANTED)} shapes; negative set: {len(NEGATIVES)} texts; throughput text {len(corpus) / 1e6:.1f} MB\n"
    )
    from detect_secrets.settings import default_settings

    score("ours (redaction.py)", redact, corpus)
    with default_settings():  # every default plugin and filter
        score("detect-secrets 1.5", detect_secrets_redact, corpus)
        score("ours + detect-secrets", both, corpus)
    print()
    for tokens in (100, 1000):
        chunking(tokens)


if __name__ == "__main__":
    main()
