"""Alerts reach a Slack-compatible webhook: a receiver started by the test on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from indexer_pipeline.dagster_defs.alerts import alert_on_check_error, failed_error_checks, post_alert

from .test_assets import materialize


@pytest.fixture
def receiver():
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hooks/test", received
    server.shutdown()
    thread.join(timeout=10)


def test_error_checks_are_posted_to_the_webhook(indexed_instance, corpus_env, receiver, monkeypatch):
    instance, _, _ = indexed_instance
    url, received = receiver
    # Any upsert is slower than an ERROR threshold of 0 ms (rejected files no longer fail success_rate).
    monkeypatch.setenv("INDEXER_CHECK_UPSERT_LATENCY_P95_MS_WARN", "0")
    monkeypatch.setenv("INDEXER_CHECK_UPSERT_LATENCY_P95_MS_ERROR", "0")
    (corpus_env.corpus_dirs[0] / "docs" / "new.md").write_text("# New\n\nA page to upsert.\n")
    result = materialize(instance, ["doc-docs"])
    failures = failed_error_checks(instance, result.run_id)
    assert any("qdrant_collection/upsert_latency_p95" in f for f in failures)

    monkeypatch.delenv("INDEXER_ALERT_WEBHOOK_URL", raising=False)
    run = instance.get_run_by_id(result.run_id)
    event = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_SUCCESS)
    context = dg.build_run_status_sensor_context(
        sensor_name="alert_on_check_error", dagster_instance=instance, dagster_run=run, dagster_event=event
    )
    assert isinstance(alert_on_check_error(context), dg.SkipReason)  # no webhook configured: nothing sent
    assert received == []

    monkeypatch.setenv("INDEXER_ALERT_WEBHOOK_URL", url)
    alert_on_check_error(context)
    [message] = received
    assert "checks failed" in message["text"] and "upsert_latency_p95" in message["text"]
    assert url not in message["text"]


def test_an_invalid_webhook_is_named_but_never_shown(receiver, monkeypatch):
    url, received = receiver
    monkeypatch.setenv("INDEXER_ALERT_WEBHOOK_URL", "hooks.example/services/T0/B0/SECRETTOKEN")  # no scheme
    with pytest.raises(ValueError) as error:
        post_alert("a run failed")
    assert str(error.value).startswith("INDEXER_ALERT_WEBHOOK_URL must be an http(s) URL")
    assert "SECRETTOKEN" not in str(error.value)

    # The webhook is read alone: an alert goes out even when another setting is what failed the run.
    monkeypatch.setenv("INDEXER_ALERT_WEBHOOK_URL", url)
    monkeypatch.setenv("EMBEDDING_RPM", "3k")
    post_alert("a run failed")
    assert received == [{"text": "a run failed"}]
