"""The contenders the transformer is measured against (each runs as its own process)."""
