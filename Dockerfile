# Worker image for deliver: ffmpeg from Debian + the package, for Prefect process/docker work pools.
# Build:  docker build -t deliver-worker .
# Run a worker:  docker run --rm -e PREFECT_API_URL=http://prefect:4200/api -v /mnt/media:/mnt/media \
#                  deliver-worker prefect worker start --pool mastering
# Run the CLI:    docker run --rm -v "$PWD:/work" -w /work deliver-worker deliver qc master.mov --spec netflix
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    DO_NOT_TRACK=1

# ffmpeg/ffprobe (Debian 12: 5.1) and a font for burn-ins; tini reaps ffmpeg children on stop.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg fonts-dejavu-core tini \
 && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 deliver
WORKDIR /opt/deliver
COPY requirements.lock pyproject.toml README.md ./
RUN pip install --no-cache-dir -r requirements.lock
COPY flows ./flows
COPY tasks ./tasks
COPY specs ./specs
COPY configs ./configs
RUN pip install --no-cache-dir --no-deps --no-build-isolation . && deliver --help >/dev/null

USER deliver
# DELIVER_ROOT: where configs/prefect.yaml's pull step finds the project inside the image;
# the deliver logger carries ffmpeg command lines into Prefect run logs.
ENV DELIVER_HOME=/home/deliver/.deliver \
    DELIVER_ROOT=/opt/deliver \
    PREFECT_LOGGING_EXTRA_LOGGERS=deliver
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["prefect", "worker", "start", "--pool", "mastering"]
