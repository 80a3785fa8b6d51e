"""``python -m gateway``: serve the REST API with uvicorn."""

from __future__ import annotations

import uvicorn

from gateway.app import create_app
from gateway.config import GatewaySettings
from svckit.config import load_settings
from svckit.logging import configure_logging
from svckit.metrics import serve_metrics


def main() -> None:
    settings = load_settings(GatewaySettings)
    configure_logging(settings.service_name, settings.log_level, settings.log_format)
    serve_metrics(settings.metrics_port)
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        # grpc.aio needs the default asyncio loop; httptools parses HTTP fast.
        loop="asyncio",
        http="httptools",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
    )


if __name__ == "__main__":
    main()
