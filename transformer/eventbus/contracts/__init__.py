"""Event contracts: what the curated topics promise their consumers, checked and published.

`collect` gathers each curated topic's key and value schemas (and its producing mappings) from the
mapping files; `gate` checks them against the registry and resolves the schema ids the transformer
writes with (`startup_gate`, called once at start-up); `catalog` renders the Backstage entities and
the AsyncAPI document. The CLI commands `eventbus schema ...` and `eventbus catalog` are thin
wrappers around these.
"""

from eventbus.contracts.collect import TopicContract, collect_contracts, default_lock_path, load_specs
from eventbus.contracts.gate import check_contracts, startup_gate

__all__ = [
    "TopicContract",
    "check_contracts",
    "collect_contracts",
    "default_lock_path",
    "load_specs",
    "startup_gate",
]
