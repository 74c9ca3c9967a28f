# qualimon service image: `docker compose up` (docker-compose.yml) runs it with
# config/docker.yaml mounted at /etc/qualimon/config.yaml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# WeasyPrint (`qualimon report --format pdf`) renders with Pango and embeds a font.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*

# Install from a copy of the build context (.dockerignore keeps it small), then
# drop the sources: only the installed package stays in the image.
COPY . /tmp/src
RUN pip install /tmp/src \
    && rm -rf /tmp/src \
    && useradd --system --uid 10001 --user-group --create-home --home-dir /var/lib/qualimon qualimon

# Never run as root: qualimon needs no privilege (9137 is not a privileged port).
USER qualimon
WORKDIR /var/lib/qualimon
EXPOSE 9137

# python, not curl: the slim image has no curl. /healthz answers 503 when the
# service is down (urlopen raises), 200 with "ok" or "degraded" otherwise.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import json, sys, urllib.request; r = urllib.request.urlopen('http://127.0.0.1:9137/healthz', timeout=4); sys.exit(json.load(r).get('status') == 'down')"]

ENTRYPOINT ["qualimon"]
CMD ["run", "-c", "/etc/qualimon/config.yaml"]
