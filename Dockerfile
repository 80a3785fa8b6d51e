# One image for every process of Marketplace Payments; docker-compose.yml picks the command.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 LOG_FORMAT=json
WORKDIR /app

COPY pyproject.toml requirements.lock ./
COPY svckit ./svckit
COPY gateway ./gateway
COPY payment_svc ./payment_svc
COPY ledger_svc ./ledger_svc
COPY wallet_svc ./wallet_svc
COPY recon_svc ./recon_svc
COPY psp_sim ./psp_sim
COPY proto ./proto
RUN pip install --no-cache-dir -c requirements.lock . \
 && useradd --system --uid 10001 app \
 && mkdir /pki && chown app /pki
# /pki is where the `pki` one-shot writes (a fresh named volume takes this folder's owner).
USER app

# Overridden per service in docker-compose.yml.
CMD ["python", "-m", "gateway"]
