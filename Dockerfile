# kato-cluster image: the `kato-cluster` command, Ray and Ray Serve, and the project installed with pip.
# One image serves every role: `docker run` alone gives the single-machine service (embedded ClickHouse
# and an embedded redis-server); docker-compose.yml runs it as a Ray head and Ray workers instead.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    KATO_DATA_DIR=/var/lib/kato

# redis-server: only for the single-container default (`kato-cluster up` without --redis starts its own).
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/kato-cluster

# Dependencies first, from pyproject.toml alone, so that a code change does not reinstall Ray.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Then the project itself (the packages listed in pyproject's [tool.setuptools.packages.find]).
COPY schema ./schema
COPY actors ./actors
COPY cluster ./cluster
COPY serve_app ./serve_app
COPY serve_config.yaml ./
RUN pip install --no-deps . \
    && kato-cluster --help > /dev/null

# Ray writes its session files under /tmp; the service needs no root.
RUN useradd --create-home --uid 1000 kato \
    && mkdir -p /var/lib/kato \
    && chown kato:kato /var/lib/kato
USER kato

EXPOSE 8000
# --data-dir explicitly: the CLI option's default would win over KATO_DATA_DIR.
CMD ["kato-cluster", "up", "--host", "0.0.0.0", "--port", "8000", "--data-dir", "/var/lib/kato"]
