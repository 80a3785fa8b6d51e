from svckit.events.cli import app

app(prog_name="python -m svckit.events")
