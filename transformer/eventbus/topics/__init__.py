"""The topics the transformer writes, provisioned ahead of it: curated, dead-letter, parked changes.

On the bus topics are provisioned, not auto-created: their partitions (which fix where each key
lands), replication and retention are decided before the first event. `model` says what a topic
should be (`DesiredTopic`, from the mappings' `topic_settings` and the service settings) and what a
cluster has (`ExistingTopic`); `plan` compares the two without Kafka (what `eventbus topics plan`
prints, and what the transformer's start-up gate refuses); `cluster` reads a cluster's topics and
applies a plan through Kafka's admin API (`eventbus topics apply`).
"""
