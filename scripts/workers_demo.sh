#!/usr/bin/env bash
# Scale-out on one machine: a local Prefect server, a process work pool with TWO workers, the
# deployments of configs/prefect.yaml, and a nightly-qc run whose items (qc-item flow runs) spread
# over both workers. Prints the nightly summary with the worker that ran each item.
#
#   make workers-demo            (or: scripts/workers_demo.sh [N_MASTERS])
#
# PostgreSQL instead of SQLite: export PREFECT_API_DATABASE_CONNECTION_URL=
#   postgresql+asyncpg://prefect:PASSWORD@db-host:5432/prefect   before running (see docs/operations.md).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${VENV:-.venv}/bin
N=${1:-4}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/deliver-workers-demo.XXXXXX")
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  sleep 2
  for pid in "${PIDS[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
  echo "logs and media kept in $WORK"
}
trap cleanup EXIT

PORT=$($BIN/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export PREFECT_HOME=$WORK/prefect-home PREFECT_API_URL=http://127.0.0.1:$PORT/api
export PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1 PREFECT_LOGGING_EXTRA_LOGGERS=deliver
export DELIVER_HOME=$WORK/deliver-home DELIVER_ROOT=$ROOT DELIVER_NIGHTLY_CONFIG=$WORK/nightly.yaml
export PREFECT_WORKER_QUERY_SECONDS=2

echo "== Prefect server on 127.0.0.1:$PORT (${PREFECT_API_DATABASE_CONNECTION_URL:+PostgreSQL}${PREFECT_API_DATABASE_CONNECTION_URL:-SQLite in $PREFECT_HOME})"
setsid $BIN/prefect server start --host 127.0.0.1 --port "$PORT" >"$WORK/server.log" 2>&1 & PIDS+=($!)
for _ in $(seq 1 120); do curl -fsS "$PREFECT_API_URL/health" >/dev/null 2>&1 && break; sleep 1; done
curl -fsS "$PREFECT_API_URL/health" >/dev/null || { tail -30 "$WORK/server.log"; exit 3; }

echo "== $N sample masters in a watch folder"
$BIN/python - "$WORK" "$N" <<'PY'
import sys
from pathlib import Path
from specs.loader import load_spec
from tasks.layback import layback, plan_layback
from tasks.media.probe import probe
from tasks.media.synth import make_sample_set
work, n = Path(sys.argv[1]), int(sys.argv[2])
spec = load_spec("demo")
for i in range(n):
    # The nightly QC looks at married masters (picture + the spec's audio tracks), as delivered.
    media = make_sample_set(work / "media" / f"title{i:02d}", layout="5.1", stereo=True)
    plan = plan_layback(probe(media.master), [probe(p) for p in media.mixes.values()], spec)
    (work / "watch" / f"title{i:02d}").mkdir(parents=True)
    layback(plan, spec, work / "watch" / f"title{i:02d}" / "master.mov")
(work / "nightly.yaml").write_text(f"""
schedule: {{cron: "0 2 * * *", timezone: "Europe/London"}}
watch_folders: [{{path: "{work / 'watch'}", spec: demo, patterns: ["master.mov"]}}]
fixity: {{rotation_nights: 7, catalog: true}}
fan_out: {{mode: deployments, deployment: qc-item/qc-item}}
""")
PY

echo "== work pool 'mastering', ffmpeg tag limit, deployments from configs/prefect.yaml"
$BIN/prefect --no-prompt work-pool create mastering --type process --overwrite >/dev/null
$BIN/prefect concurrency-limit create ffmpeg "$(nproc)" >/dev/null
$BIN/prefect --no-prompt deploy --all --prefect-file configs/prefect.yaml >"$WORK/deploy.log" 2>&1 \
  || { tail -30 "$WORK/deploy.log"; exit 3; }
$BIN/deliver automation unresponsive   # a run lost with its worker is marked Crashed, not left Running

echo "== two workers on the pool"
for w in worker-a worker-b; do
  DELIVER_WORKER_NAME=$w setsid $BIN/prefect worker start --pool mastering --name "$w" --limit 2 \
    >"$WORK/$w.log" 2>&1 & PIDS+=($!)
done
sleep 5

echo "== nightly-qc run (items become qc-item runs picked up by either worker)"
$BIN/python - <<'PY'
import json, sys, time
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
with get_client(sync_client=True) as c:
    dep = c.read_deployment_by_name("nightly-qc/nightly-qc")
    run = c.create_flow_run_from_deployment(dep.id, parameters={"request": {"force_all": True}})
    deadline = time.monotonic() + 900
    while True:
        fr = c.read_flow_run(run.id)
        if fr.state and fr.state.is_final():
            break
        if time.monotonic() > deadline:
            sys.exit("nightly-qc did not finish within 15 minutes")
        time.sleep(2)
    print(f"nightly-qc: {fr.state.type.value} ({fr.state.message})")
    arts = c.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])))
    table = next(a for a in arts if a.key == "nightly-summary")
    rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    workers = {}
    for r in rows:
        print(f"  {r['kind']:6} {r['result']:8} {r['host']:24} {r['item']}\n         {r['detail'][:110]}")
        if r["kind"] == "qc":
            workers[r["host"].split("/")[-1]] = workers.get(r["host"].split("/")[-1], 0) + 1
    print("items per worker:", workers)
    if len([w for w in workers if w.startswith("worker-")]) < 2:
        sys.exit("items did not spread over both workers")
PY
