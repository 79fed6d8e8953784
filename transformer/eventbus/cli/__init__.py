"""Command-line interface: thin commands that build a task, run it and map the outcome to an exit code."""
