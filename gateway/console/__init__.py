"""The operator console: server-rendered pages under ``/console`` (see docs/console.md)."""
