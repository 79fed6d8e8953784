"""Change-data-capture producer for the enterprise event bus.

Debezium streams row changes into staging topics; declarative mappings turn the changes that matter
into curated Avro business events.
"""

__version__ = "0.1.0"
