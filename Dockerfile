# authmd: slim, non-root, state in a volume.
#   docker build -t authmd .
#   docker run -p 8000:8000 -v authmd-data:/data -e AUTHMD_ISSUER=https://auth.example.com authmd
# The issuer must be the public https URL (a plain-http issuer is only allowed on loopback).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    AUTHMD_DATA_DIR=/data

RUN useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin authmd \
 && mkdir /data && chown authmd:authmd /data && chmod 0700 /data

WORKDIR /srv/authmd
COPY pyproject.toml README.md ./
COPY app ./app
RUN pip install . && rm -rf /root/.cache

USER authmd
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2).status != 200)"]
CMD ["authmd", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
