# syntax=docker/dockerfile:1
# pdd-agent — 拼多多售后逾期预警 / Pinduoduo after-sales deadline alerts, as a container image.
# Debian 12 (bookworm): Debian's Python 3.11, Debian's Chromium and the Noto CJK fonts (readable captures).
#
#   docker build -t pdd-agent .
#   docker run -d --name pdd-agent --restart unless-stopped --stop-timeout 120 \
#       --env-file /etc/pdd-agent/env \
#       -v /etc/pdd-agent/config.toml:/etc/pdd-agent/config.toml:ro \
#       -v pdd-agent-data:/data pdd-agent
#
# The config must say data_dir = "/data". See docs/operations.md, "Deployment (部署)", and deploy/docker-compose.yml.
FROM debian:bookworm-slim

# Optional mirrors for slow or blocked networks (国内镜像), e.g.
#   --build-arg APT_MIRROR=mirrors.tuna.tsinghua.edu.cn
#   --build-arg PIP_MIRROR=https://pypi.tuna.tsinghua.edu.cn/simple
ARG APT_MIRROR=""
ARG PIP_MIRROR=""

# chromium: the browser the agent drives (found through PDD_AGENT_CHROMIUM below).
# fonts-noto-cjk: Chinese text in failure screenshots. tzdata: Asia/Shanghai. ca-certificates: HTTPS to WeCom/SMTP.
# libatomic1: needed by the Node.js driver inside the playwright wheel (it fails to start without it).
# tini: PID 1 that forwards SIGTERM to pdd-agent and reaps Chromium's exited child processes.
# sqlite3: online backups of /data/agent.db (docs/operations.md, "Backups").
# Versions are not pinned on purpose: a rebuild picks up Debian's security updates (Chromium above all).
# hadolint ignore=DL3008
RUN set -eux; \
    if [ -n "$APT_MIRROR" ]; then \
        sed -i "s|deb.debian.org|$APT_MIRROR|g" /etc/apt/sources.list.d/debian.sources; \
    fi; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3 python3-venv libatomic1 ca-certificates tzdata tini chromium fonts-noto-cjk sqlite3; \
    rm -rf /var/lib/apt/lists/*

# A dedicated unprivileged user with a fixed UID (chown a bind-mounted data folder to 10001:10001).
# /data is created here, owned by that user, so a new named volume starts with the right owner and mode.
RUN set -eux; \
    groupadd --gid 10001 pdd-agent; \
    useradd --uid 10001 --gid 10001 --no-log-init --home-dir /home/pdd-agent --create-home \
        --shell /usr/sbin/nologin pdd-agent; \
    install -d -m 0700 -o pdd-agent -g pdd-agent /data; \
    install -d -m 0755 /etc/pdd-agent

# Only what the package needs (.dockerignore keeps everything else, secrets included, out of the context).
COPY pyproject.toml README.md /src/
COPY agent/ /src/agent/
COPY notifiers/ /src/notifiers/
COPY selectors/ /src/selectors/
# The optional extras: cluster (several nodes on PostgreSQL: psycopg, procrastinate), apprise (the long tail of push
# services). EXTRAS="" builds the smallest image.
ARG EXTRAS=cluster,apprise
RUN set -eux; \
    python3 -m venv /opt/pdd-agent/venv; \
    /opt/pdd-agent/venv/bin/pip install --no-cache-dir --disable-pip-version-check \
        ${PIP_MIRROR:+--index-url "$PIP_MIRROR"} "/src${EXTRAS:+[$EXTRAS]}"; \
    rm -rf /src; \
    /opt/pdd-agent/venv/bin/pdd-agent --version

# The agent launches Chromium with --disable-dev-shm-usage (agent/chromium.py), so Docker's small default
# /dev/shm (64 MB) is enough: no --shm-size or --ipc=host needed. Playwright starts Chromium without
# Chromium's own sandbox (its default), so no seccomp profile or SYS_ADMIN capability is needed either:
# the container is the isolation.
ENV PATH=/opt/pdd-agent/venv/bin:$PATH \
    PDD_AGENT_CHROMIUM=/usr/bin/chromium \
    LANG=C.UTF-8 \
    TZ=Asia/Shanghai \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

# Numeric, so `runAsNonRoot`-style checks can verify it: pdd-agent (10001:10001).
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
# The team page, /healthz and /metrics: reachable from outside only with [web] listen = "0.0.0.0:8700".
EXPOSE 8700

# `pdd-agent run` finishes the check in flight within [schedule] shutdown_grace (60 s by default), sends the
# outbox once and exits 0: give it 120 s (`docker stop -t 120`, `--stop-timeout 120`, compose stop_grace_period).
STOPSIGNAL SIGTERM

# `pdd-agent status` exits 0 only while the service runs and is healthy (it reads the heartbeat the service
# rewrites every few seconds), so it works without the health port. Trade-off: each probe starts a Python
# process (a fraction of a CPU-second, hence the 60 s interval); a cheaper probe is
#   python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8700/healthz', timeout=5)"
# A shop that needs a login makes the container "unhealthy": Docker only reports that, it restarts nothing.
HEALTHCHECK --interval=60s --timeout=30s --start-period=5m --retries=3 \
    CMD ["/opt/pdd-agent/venv/bin/pdd-agent", "status", "--config", "/etc/pdd-agent/config.toml"]

ENTRYPOINT ["/usr/bin/tini", "--", "pdd-agent"]
CMD ["run", "--config", "/etc/pdd-agent/config.toml"]
