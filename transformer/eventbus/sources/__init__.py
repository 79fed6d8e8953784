"""Source databases: definitions, preflight checks, Debezium connector registration."""
