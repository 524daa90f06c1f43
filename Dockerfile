# Image for the `api` and `worker` services of docker-compose.yml (ClickHouse server mode).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY api api
COPY streams streams
COPY schemas schemas
COPY analytics analytics
COPY bulkops bulkops
COPY core core
RUN pip install --no-cache-dir . && useradd --system bulkops \
    && mkdir -p /var/lib/bulkops/worker && chown bulkops /var/lib/bulkops/worker
USER bulkops
EXPOSE 8000
CMD ["bulkops", "api"]
