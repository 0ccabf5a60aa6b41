# hubbot: one process serving the Telegram bot and its HTTP listener (/healthz, /metrics, webhook).
#
#   docker build -t hubbot .
#   docker run -d --name hubbot -e BOT_TOKEN=... -v hubbot-data:/data -p 8080:8080 hubbot
#
# The build runs `hubbot validate && hubbot test`, so an image with broken content cannot be built.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# A fixed, unprivileged user that owns the database volume.
RUN groupadd --system --gid 10001 hubbot \
 && useradd --system --uid 10001 --gid hubbot --home-dir /home/hubbot --create-home \
        --shell /usr/sbin/nologin hubbot

# Install the package with its shipped content (a wheel puts resources.yaml and intents/ under
# <prefix>/share/hubbot, where bot/content/paths.py finds them), then drop the source tree.
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY bot/ bot/
COPY resources.yaml ./
COPY intents/ intents/
RUN pip install --no-cache-dir . \
 && rm -rf /src

# SQLite database (and the generated hash key, stored beside it when HUBBOT_HASH_KEY is unset).
# Created and chowned before VOLUME, so a new named volume starts out owned by the bot's user.
RUN mkdir -p /data && chown hubbot:hubbot /data && chmod 0750 /data
VOLUME ["/data"]
WORKDIR /data

USER hubbot

# Check the installed content as the runtime user, from outside the source tree.
RUN hubbot validate && hubbot test

ENV HUBBOT_DB=/data/hubbot.sqlite3 \
    HUBBOT_LISTEN=0.0.0.0:8080

EXPOSE 8080

# slim has no curl: probe /healthz with the standard library (any error or non-2xx status exits 1).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('HUBBOT_LISTEN', '0.0.0.0:8080').rsplit(':', 1)[-1]; urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4)"]

# As PID 1, Python ignores SIGTERM unless the program handles it; SIGINT always stops it cleanly.
STOPSIGNAL SIGINT

ENTRYPOINT ["hubbot"]
CMD ["run"]
