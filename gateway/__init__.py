"""gateway: the public REST API (FastAPI) in front of the gRPC services, and PSP webhooks in."""
