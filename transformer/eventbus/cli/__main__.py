"""`python -m eventbus.cli` runs the `eventbus` command (used where the console script is not on PATH)."""

from eventbus.cli.main import run

run()
