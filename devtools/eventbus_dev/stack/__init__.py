"""The local stack: PostgreSQL, Kafka (KRaft), Kafka Connect + Debezium and Apicurio Registry as plain
processes on loopback, for machines without Docker."""
