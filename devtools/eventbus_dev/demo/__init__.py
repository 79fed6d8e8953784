"""The sample claims domain: its database, realistic traffic, and the `make demo` walk-through."""
