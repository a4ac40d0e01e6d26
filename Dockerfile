# Serve the registry's champion: docker build -t valuegate . && docker run -p 8000:8000 valuegate
# Build from a checkout where the pipeline has packaged a champion (models/registry is in git).
FROM python:3.11-slim
WORKDIR /app
COPY . .
# The README's install command (a virtualenv, then the package).
RUN python3.11 -m venv .venv && .venv/bin/pip install -q -e . \
    && ls models/registry/*/champion.json \
    && .venv/bin/valuegate models list
ENV PATH=/app/.venv/bin:$PATH
# VALUEGATE_TOKEN set at run time (docker run -e VALUEGATE_TOKEN=...) turns on bearer auth.
EXPOSE 8000
USER nobody
CMD ["valuegate", "serve", "--model", "champion", "--host", "0.0.0.0", "--port", "8000", \
     "--log", "/tmp/predictions.sqlite"]
