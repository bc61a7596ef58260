"""``deliver serve`` and ``deliver automation create``: operating the pipeline on a Prefect server."""

from __future__ import annotations

from typing import Any, cast

import typer

from flows.cli import app, clean_errors, fail
from specs.errors import EXIT_BAD_INPUT, EXIT_INFRASTRUCTURE

__all__ = ["serve_cmd", "automation_create_cmd", "create_notification_automation"]

automation_app = typer.Typer(help="Prefect automations that notify operators.", no_args_is_help=True)
app.add_typer(automation_app, name="automation")

EVENTS = ["deliver.qc.failed", "deliver.input.refused", "deliver.archive.mismatch", "prefect.flow-run.Failed",
          "prefect.flow-run.Crashed"]
#: Jinja templates of the notification (Prefect automations): our events carry a readable ``message``,
#: the title, the verdict and the run's UI link; Prefect's own failed/crashed run events get the run's
#: name, state message and UI link. Never the raw payload.
SUBJECT = ("{% if event.payload.message is defined %}deliver: {{ event.payload.message | truncate(120) }}"
           "{% else %}deliver: flow run {{ event.resource.get('prefect.resource.name', '') }} "
           "{{ event.event.rsplit('.', 1)[-1] | lower }}{% endif %}")
BODY = ("{% if event.payload.message is defined %}{{ event.payload.message }}\n"
        "Title: {{ event.payload.title }}{% if event.payload.version %} {{ event.payload.version }}{% endif %}\n"
        "Verdict: {{ event.payload.verdict }}\n"
        "{% if event.payload.spec %}Spec: {{ event.payload.spec }}\n{% endif %}"
        "{% if event.payload.first_error %}First error: {{ event.payload.first_error }}\n{% endif %}"
        "{% if event.payload.report %}Report: {{ event.payload.report }}\n{% endif %}"
        "Run: {{ event.payload.run_url or 'not run by Prefect' }}\n"
        "{% else %}Flow run {{ event.resource.get('prefect.resource.name', '') }} is "
        "{{ event.event.rsplit('.', 1)[-1] }}: {{ event.payload.get('validated_state', {}).get('message') or '' }}\n"
        "Run: {{ flow_run|ui_url }}\n{% endif %}")


def _require_api() -> None:
    """PREFECT_API_URL, else the local server the run/qc commands share (:mod:`flows.server`)."""
    from flows.server import ensure_api

    if not ensure_api():
        fail("no Prefect API: set PREFECT_API_URL=http://HOST:4200/api, or unset DELIVER_LOCAL_SERVER=0 to use "
             "the local server", EXIT_BAD_INPUT)


def create_notification_automation(*, name: str, webhook_url: str | None, block: str | None,
                                   kind: str = "webhook", events: list[str] | None = None) -> Any:
    """Make (or replace) an automation notifying through a notification block on our events.

    ``block`` names an existing notification block document ("slack-webhook/ops" style or just its
    name with ``kind``); otherwise one is saved from ``webhook_url``: ``kind`` "webhook" (generic JSON
    POST: CustomWebhookNotificationBlock), "slack" (SlackWebhook) or "teams" (MicrosoftTeamsWebhook).
    """
    from prefect.automations import Automation
    from prefect.blocks.core import Block
    from prefect.blocks.notifications import CustomWebhookNotificationBlock, MicrosoftTeamsWebhook, SlackWebhook
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import EventTrigger, Posture

    block_name = f"{name}-notify"
    block_types = {"webhook": "custom-webhook", "slack": "slack-webhook", "teams": "ms-teams-webhook"}
    if block:
        doc: Block = cast(Block, Block.load(block if "/" in block else f"{block_types[kind]}/{block}"))
    elif webhook_url:
        if kind == "slack":
            doc = SlackWebhook(url=webhook_url)
        elif kind == "teams":
            doc = MicrosoftTeamsWebhook(url=webhook_url)
        else:
            doc = CustomWebhookNotificationBlock(
                name=block_name, url=webhook_url, method="POST",
                json_data={"text": "{{subject}}", "body": "{{body}}", "source": "deliver"}, allow_private_urls=True)
        doc.save(block_name, overwrite=True)
        doc = cast(Block, type(doc).load(block_name))
    else:
        raise ValueError("give --webhook-url URL or --block NAME")
    try:
        old: Automation | None = cast(Automation, Automation.read(name=name))
    except Exception:  # noqa: BLE001 - not found
        old = None
    if old is not None:
        old.delete()
    return Automation(
        name=name,
        description="Notify operators of QC failures, refused (bad input) runs, archive mismatches and "
                    "failed/crashed runs",
        trigger=EventTrigger(expect=set(events or EVENTS),
                             match={"prefect.resource.id": ["deliver.*", "prefect.flow-run.*"]},
                             for_each={"prefect.resource.id"}, posture=Posture.Reactive, threshold=1),
        actions=[SendNotification(block_document_id=doc._block_document_id,
                                  subject=SUBJECT, body=BODY)],
    ).create()


@app.command("serve")
@clean_errors
def serve_cmd(
    limit: int | None = typer.Option(None, "--limit", help="Most flow runs at once in this process."),
    ffmpeg_limit: int | None = typer.Option(None, "--ffmpeg-limit",
                                               help="Tag concurrency limit 'ffmpeg' if missing (default: CPU cores)."),
    no_schedule: bool = typer.Option(False, "--no-schedule", help="Serve nightly-qc without its cron schedule."),
) -> None:
    """Serve the deployments (deliver, qc, archive, verify, nightly-qc, qc-item) against PREFECT_API_URL."""
    _require_api()
    from flows.deployments import serve_all

    try:
        serve_all(limit=limit, nightly_schedule=not no_schedule, ffmpeg_limit=ffmpeg_limit)
    except (ConnectionError, OSError) as exc:
        fail(f"error: Prefect API unreachable ({exc}); check PREFECT_API_URL", EXIT_INFRASTRUCTURE)


@automation_app.command("create")
@clean_errors
def automation_create_cmd(
    webhook_url: str | None = typer.Option(None, "--webhook-url", help="Webhook to POST to (Slack/Teams/any)."),
    kind: str = typer.Option("webhook", "--kind", help="webhook (generic JSON POST), slack or teams."),
    block: str | None = typer.Option(None, "--block", help="Use an existing notification block (type/name)."),
    name: str = typer.Option("deliver-notify", "--name", help="Automation name (replaced if it exists)."),
) -> None:
    """Create an automation that notifies through a webhook block on QC failure, archive mismatch, failed runs."""
    _require_api()
    if kind not in ("webhook", "slack", "teams"):
        fail(f"--kind {kind!r}: use webhook, slack or teams", EXIT_BAD_INPUT)
    if not webhook_url and not block:
        fail("give --webhook-url URL or --block TYPE/NAME", EXIT_BAD_INPUT)
    auto = create_notification_automation(name=name, webhook_url=webhook_url, block=block, kind=kind)
    typer.echo(f"automation {auto.name} ({auto.id}) notifies on: {', '.join(EVENTS)}")


@automation_app.command("unresponsive")
@clean_errors
def automation_unresponsive_cmd() -> None:
    """Create (once per server) the automation that marks Crashed a run silent for 3 heartbeats.

    ``deliver serve`` makes it itself; run this once for a work pool (configs/prefect.yaml gives its runs
    the 30 s heartbeat it watches)."""
    _require_api()
    from flows.deployments import HEARTBEAT_S, UNRESPONSIVE_AFTER_HEARTBEATS, ensure_unresponsive_run_automation

    name = ensure_unresponsive_run_automation()
    typer.echo(f"automation {name}: a flow run with no heartbeat for {HEARTBEAT_S * UNRESPONSIVE_AFTER_HEARTBEATS} s "
               "is marked Crashed")
