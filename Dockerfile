FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGSTER_HOME=/opt/dagster/home
WORKDIR /opt/salesflow

# Dependencies in a layer of their own, rebuilt only when pyproject.toml changes: installing
# the project before its packages are copied pulls in every dependency (PostgreSQL storage
# included); the second install puts the packages themselves in.
COPY pyproject.toml README.md ./
RUN pip install '.[postgres]'

# Every package listed in pyproject's [tool.setuptools.packages.find] include.
COPY pipelines pipelines
COPY assets assets
COPY resources resources
COPY sensors sensors
COPY salesflow salesflow
COPY emulator emulator
RUN pip install --no-deps --force-reinstall .

# An unprivileged user owns the data folders; named volumes mounted on them start out with
# this ownership.
RUN useradd --system --uid 10001 --user-group --home-dir /opt/salesflow --no-create-home salesflow \
    && mkdir -p "$DAGSTER_HOME/storage" /data/inbox /data/warehouse /data/exports /state \
    && chown -R salesflow:salesflow "$DAGSTER_HOME" /data /state
COPY deploy/dagster.postgres.yaml /opt/dagster/home/dagster.yaml
COPY workspace.yaml deploy/workspace.docker.yaml ./
USER salesflow

EXPOSE 4000
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "pipelines.definitions", \
     "--location-name", "salesflow"]
