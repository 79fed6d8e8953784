"""`python -m eventbus_dev.cli` runs the `eventbus-dev` command (where the console script is not on PATH)."""

from eventbus_dev.cli.main import run

run()
