"""As a new user would: the Dagster UI in a real headless Chromium, after "materialize all".

Starts `dagster dev` on 127.0.0.1 with a temporary DAGSTER_HOME and a copy of the sample corpus,
launches the index job over every unit through the UI's GraphQL API, waits for the run, then drives
Debian's Chromium (Playwright with the system browser: nothing is downloaded) to the asset graph and
to the checks of `qdrant_collection`, and saves screenshots in test-artifacts/. Finally the CLI
must find a sample document. Bounded in time; stops every process it started.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from indexer_pipeline.config import SAMPLE_CORPUS
from indexer_pipeline.corpus import discover_units

from .test_dagster_dev_e2e import REPO, dagster_dev_process, dagster_env, free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (dev extra)")
if not Path(CHROMIUM).exists():
    pytest.skip("Chromium is not installed: apt-get install chromium (.ci/run does)", allow_module_level=True)


@pytest.fixture
def ui(tmp_path, simulator):
    corpus = tmp_path / "corpus"
    shutil.copytree(SAMPLE_CORPUS, corpus)
    port = free_port()
    # The sensor's first tick would index the corpus too; this test launches the run itself.
    env = dagster_env(tmp_path, corpus, simulator, INDEXER_SENSOR_INTERVAL_S="3600")
    cli = str(Path(sys.executable).with_name("indexer-pipeline"))
    subprocess.run([cli, "register"], env=env, check=True, capture_output=True, timeout=120)
    log = tmp_path / "dagster_dev.log"
    with dagster_dev_process(env, log, port):
        yield port, env, corpus, log


def wait_until(predicate, what: str, log: Path, timeout: float = 240):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            value = predicate()
        except Exception:  # the webserver is still starting
            value = None
        if value:
            return value
        time.sleep(1)
    pytest.fail(f"timed out waiting for {what}; dagster dev log tail:\n{log.read_text()[-3000:]}")


def checks_per_asset() -> Counter:
    from indexer_pipeline.definitions import defs

    return Counter(key.asset_key.to_user_string() for key in defs.resolve_asset_graph().asset_check_keys)


def test_materialize_all_then_see_assets_and_checks_in_chromium(ui):
    from dagster_graphql import DagsterGraphQLClient

    port, env, corpus, log = ui
    keys = [u.key for u in discover_units([corpus])]
    client = DagsterGraphQLClient("127.0.0.1", port_number=port)
    run_id = wait_until(
        lambda: client.submit_job_execution(
            "index_job",
            tags={
                "dagster/asset_partition_range_start": keys[0],
                "dagster/asset_partition_range_end": keys[-1],
            },
        ),
        "the UI to accept the run",
        log,
    )
    status = wait_until(
        lambda: (s := client.get_run_status(run_id).value) in ("SUCCESS", "FAILURE", "CANCELED") and s,
        "the run to finish",
        log,
    )
    assert status == "SUCCESS", log.read_text()[-3000:]

    ARTIFACTS.mkdir(exist_ok=True)
    base = f"http://127.0.0.1:{port}"
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.goto(f"{base}/asset-groups/indexing", wait_until="networkidle", timeout=60_000)
        skip = page.get_by_role("button", name="Skip")  # the first-visit newsletter dialog
        if skip.count():
            skip.first.click()
        for name in ("raw_documents", "document_embeddings", "qdrant_collection"):
            page.get_by_text(name, exact=True).first.wait_for(timeout=60_000)
        # The graph's nodes: every partition filled, every check of every asset passed.
        for n in sorted(set(checks_per_asset().values())):
            page.get_by_text(f"{n} / {n} Passed").first.wait_for(timeout=60_000)
        assert page.get_by_text("100% filled").count() == 3
        page.screenshot(path=str(ARTIFACTS / "asset-graph.png"))

        page.goto(
            f"{base}/assets/qdrant_collection?view=partitions", wait_until="networkidle", timeout=60_000
        )
        page.get_by_text(f"{len(keys)}", exact=False).first.wait_for(timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "qdrant-collection-partitions.png"))

        page.goto(f"{base}/assets/qdrant_collection?view=checks", wait_until="networkidle", timeout=60_000)
        for check in ("points_match_chunks", "vectors_valid", "success_rate", "retrieval_quality"):
            page.get_by_text(check, exact=True).first.wait_for(timeout=60_000)
        text = page.inner_text("body")
        page.screenshot(path=str(ARTIFACTS / "qdrant-collection-checks.png"), full_page=True)

        # Retrieval quality over time: two more evaluations on demand, then the check's own page.
        for _ in range(2):
            quality = client.submit_job_execution("quality_job")
            assert wait_until(
                lambda q=quality: client.get_run_status(q).value in ("SUCCESS", "FAILURE") and True,
                "quality_job",
                log,
            )
        page.get_by_text("retrieval_quality", exact=True).first.click()
        page.get_by_text("recall_at_5").first.wait_for(timeout=60_000)
        page.wait_for_timeout(2000)
        quality_text = page.inner_text("body")
        page.screenshot(path=str(ARTIFACTS / "retrieval-quality.png"), full_page=True)
        page.get_by_text("Execution history", exact=True).first.click()
        page.wait_for_timeout(3000)
        page.screenshot(path=str(ARTIFACTS / "retrieval-quality-history.png"), full_page=True)
        browser.close()
    assert "Failed" not in text and "Passed" in text, text[:2000]
    assert "mrr" in quality_text and "ndcg_at_10" in quality_text, quality_text[:2000]

    cli = str(Path(sys.executable).with_name("indexer-pipeline"))
    found = subprocess.run(
        [cli, "search", "pods CrashLoopBackOff after upgrading orders-api SIGTERM", "--json", "--limit", "3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert found.returncode == 0, found.stderr
    assert "d1f1aec9-7691-4868-a7b2-1533eaf4135b" in found.stdout
