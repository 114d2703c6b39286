FROM python:3.11-slim
WORKDIR /opt/salesflow
ENV PYTHONUNBUFFERED=1 DAGSTER_HOME=/opt/dagster/home
COPY pyproject.toml README.md ./
COPY pipelines pipelines
COPY assets assets
COPY resources resources
COPY sensors sensors
COPY salesflow salesflow
COPY emulator emulator
RUN pip install --no-cache-dir '.[postgres]' && mkdir -p $DAGSTER_HOME /data
COPY deploy/dagster.postgres.yaml /opt/dagster/home/dagster.yaml
COPY workspace.yaml deploy/workspace.docker.yaml ./
EXPOSE 4000
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "pipelines.definitions"]
