"""As a new user would: the Dagster UI in a real headless Chromium, after "materialize all".

Starts `dagster dev` on 127.0.0.1 with a temporary DAGSTER_HOME and a copy of the sample corpus,
launches the index job over every unit through the UI's GraphQL API, waits for the run, then drives
Debian's Chromium (Playwright with the system browser: nothing is downloaded) to the asset graph and
to the checks of `qdrant_collection`, and saves screenshots in test-artifacts/. Finally the CLI
must find a sample document. A second test opens the UI over 10,000 partitions (issue 12, item 5).
Bounded in time; stops every process it started.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest

from indexer_pipeline.config import SAMPLE_CORPUS
from indexer_pipeline.corpus import discover_units

from .test_dagster_dev_e2e import REPO, dagster_dev_process, dagster_env, free_port

PARTITIONS = 10_000

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


def new_page(browser):
    """A page that dismisses the UI's first-visit newsletter dialog whenever it shows: it fades in a
    while after a page loads, and a test that looked for it once was seen blocked by it later."""
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.add_locator_handler(page.get_by_role("button", name="Skip"), lambda skip: skip.click())
    return page


def shown_after_reloads(page, text: str, name: str, reloads: int = 3) -> None:
    """Wait for `text`, reloading the page between waits: a run the sensor started beside the test's
    can finish after the page loaded, and the graph's check summary was once seen not to update in a
    loaded CI run (all checks had passed by then, in the log). A screenshot is kept if it never shows."""
    for attempt in range(reloads + 1):
        try:
            page.get_by_text(text).first.wait_for(timeout=45_000)
            return
        except playwright_api.Error:
            if attempt == reloads:
                page.screenshot(path=str(ARTIFACTS / f"{name}-timeout.png"))
                raise
            page.reload(wait_until="networkidle", timeout=60_000)


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
        page = new_page(browser)
        page.goto(f"{base}/asset-groups/indexing", wait_until="networkidle", timeout=60_000)
        for name in ("raw_documents", "document_embeddings", "qdrant_collection"):
            page.get_by_text(name, exact=True).first.wait_for(timeout=60_000)
        # The graph's nodes: every partition filled, every check of every asset passed.
        for n in sorted(set(checks_per_asset().values())):
            shown_after_reloads(page, f"{n} / {n} Passed", "asset-graph-checks")
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


@pytest.fixture
def ui_many_partitions(tmp_path, simulator):
    """The UI alone over PARTITIONS partitions registered through the instance's API (no unit is indexed;
    no daemon, whose change sensor would remove partitions that have no folder), 1 in 100 materialized."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    env = dagster_env(tmp_path, corpus, simulator)
    keys = [f"task-{i:08d}-0000-4000-8000-000000000000" for i in range(PARTITIONS)]
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        instance.add_dynamic_partitions("source_units", keys)
        for key in keys[::100]:
            instance.report_runless_asset_event(dg.AssetMaterialization("raw_documents", partition=key))
    port, log = free_port(), tmp_path / "webserver.log"
    with dagster_dev_process(env, log, port, webserver_only=True):
        wait_until(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5).status == 200,
            "the webserver",
            log,
            timeout=120,
        )
        yield port, env, keys, log


def test_asset_page_partition_picker_and_materialize_all_with_10000_partitions(ui_many_partitions):
    port, env, keys, log = ui_many_partitions
    base, shown = f"http://127.0.0.1:{port}", f"{PARTITIONS:,}"
    seconds: dict[str, float] = {}
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = new_page(browser)
        page.set_default_timeout(120_000)  # a page that never renders fails the test

        start = time.perf_counter()
        page.goto(f"{base}/assets/raw_documents?view=partitions", wait_until="networkidle")
        page.get_by_text(f"{shown} Partitions Selected").wait_for()  # the partition health, by status
        page.get_by_text(f"Materialized ({PARTITIONS // 100})").wait_for()
        page.get_by_text(f"Missing ({PARTITIONS - PARTITIONS // 100})").wait_for()
        seconds["asset page, partitions tab"] = time.perf_counter() - start
        start = time.perf_counter()
        # The asset page's partition list renders only the rows in view: the last key's row exists only once
        # the filter found it (its full name sits in a hidden element; the visible one is middle-truncated).
        assert page.get_by_text(keys[-1], exact=True).count() == 0
        page.get_by_placeholder("Filter by name").fill(keys[-1])
        page.get_by_text(keys[-1], exact=True).first.wait_for(state="attached")
        assert page.get_by_text(keys[0], exact=True).count() == 0
        seconds["partition picker, filter to the last key"] = time.perf_counter() - start
        page.screenshot(path=str(ARTIFACTS / f"raw-documents-{PARTITIONS}-partitions.png"))

        start = time.perf_counter()
        page.goto(f"{base}/asset-groups/indexing", wait_until="networkidle")
        page.get_by_text("1% filled").first.wait_for()  # raw_documents: 100 of 10,000
        assert page.get_by_text(f"{shown} partitions").count() == 3
        seconds["asset graph, three assets"] = time.perf_counter() - start

        # "Materialize all" over every partition: one backfill, which the daemon runs as single range runs
        # (the assets' BackfillPolicy.single_run), not 10,000 runs.
        start = time.perf_counter()
        page.goto(f"{base}/assets/raw_documents", wait_until="networkidle")
        page.get_by_role("button", name="Materialize…").first.click()
        dialog = page.get_by_role("dialog").first
        dialog.get_by_role("button", name="All", exact=True).click()
        dialog.get_by_text(f"{shown} partitions").first.wait_for()
        dialog.get_by_text("Backfills all partitions in a single run.").wait_for()
        seconds["launch dialog, all partitions"] = time.perf_counter() - start
        page.screenshot(path=str(ARTIFACTS / f"materialize-{PARTITIONS}-partitions.png"))
        start = time.perf_counter()
        dialog.get_by_role("button", name="Launch backfill").click()
        dialog.wait_for(state="detached")
        seconds["launch backfill"] = time.perf_counter() - start
        browser.close()

    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        backfills = instance.get_backfills()
    assert len(backfills) == 1, log.read_text()[-3000:]
    target = backfills[0].asset_backfill_data.target_subset
    assert target.num_partitions_and_non_partitioned_assets == PARTITIONS
    for what, value in seconds.items():
        print(f"UI with {shown} partitions: {what}: {value:.1f} s")
