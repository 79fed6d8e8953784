"""The `eventbus-dev` command: the local stack and the demo, beside the product's `eventbus` command."""
