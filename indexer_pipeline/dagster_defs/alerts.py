"""Optional alerts: failed runs and ERROR-severity check failures posted to a webhook.

Set `INDEXER_ALERT_WEBHOOK_URL` to a Slack incoming-webhook URL (or anything that accepts Slack's
`{"text": ...}` JSON). Without it the sensors skip. The URL itself is never logged: it is a secret.
"""

import json
import urllib.request

import dagster as dg

from ..config import Settings, env_name

WEBHOOK_ENV = env_name("alert_webhook_url")


def webhook_url() -> str | None:
    """The webhook, validated alone: an alert about a run that failed on another bad setting still goes out."""
    return Settings.read("alert_webhook_url")


def post_alert(text: str, url: str | None = None, timeout_s: float = 10.0) -> None:
    url = url or webhook_url()
    if not url:
        return
    request = urllib.request.Request(
        url, data=json.dumps({"text": text}).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        response.read()


def failed_error_checks(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """'asset/check: description' for every ERROR-severity check that failed in the run."""
    failures = []
    for record in instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ).records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        if not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR:
            key = evaluation.asset_check_key
            failures.append(f"{key.asset_key.to_user_string()}/{key.name}: {evaluation.description or ''}")
    return failures


@dg.run_failure_sensor(
    default_status=dg.DefaultSensorStatus.RUNNING, description="Posts failed runs to the webhook."
)
def alert_on_run_failure(context: dg.RunFailureSensorContext):
    if not webhook_url():
        return dg.SkipReason(f"{WEBHOOK_ENV} is not set")
    run = context.dagster_run
    post_alert(
        f":red_circle: indexer_pipeline run {run.run_id[:8]} ({run.job_name}) failed: "
        f"{context.failure_event.message}"
    )


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Posts ERROR-severity asset check failures to the webhook.",
)
def alert_on_check_error(context: dg.RunStatusSensorContext):
    if not webhook_url():
        return dg.SkipReason(f"{WEBHOOK_ENV} is not set")
    failures = failed_error_checks(context.instance, context.dagster_run.run_id)
    if failures:
        lines = "\n".join(f"• {f}" for f in failures)
        post_alert(f":warning: run {context.dagster_run.run_id[:8]}: {len(failures)} checks failed\n{lines}")
