"""Generated from proto/ by `python -m svckit.protogen`. Do not edit."""
