# One image for every collector service: the API, the scheduler, the one-shot commands, and
# (for the demo profile) the Central emulator and the simulated enumerators.
# Settings come from the environment (COLLECTOR_*); see docker-compose.yml and the README.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first (they change less often than the code), then the code.
COPY pyproject.toml README.md ./
COPY collector ./collector
COPY api ./api
COPY scheduler ./scheduler
COPY emulator ./emulator
RUN pip install .

# The forms (XLSForms, their media, the manifest with each form's sync schedule).
COPY forms ./forms

RUN useradd --create-home --uid 10001 collector \
    && mkdir -p /data \
    && chown collector:collector /data
USER collector

ENV COLLECTOR_DATA_DIR=/data \
    COLLECTOR_FORMS_DIR=/app/forms \
    COLLECTOR_API_HOST=0.0.0.0 \
    COLLECTOR_API_PORT=8000

EXPOSE 8000
# umask 077 for every service: what they write in /data (store, attachments, the Central
# token cache, enumerator QR codes) is readable by the collector user only. The command
# (CMD, or a compose service's command) runs as "$@" of this shell, exec'd (signals reach it).
ENTRYPOINT ["/bin/sh", "-c", "umask 077 && exec \"$@\"", "collector-entrypoint"]
CMD ["collector", "api"]
