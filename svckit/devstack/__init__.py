"""The one-command development stack: embedded PostgreSQL and Valkey plus every service."""
