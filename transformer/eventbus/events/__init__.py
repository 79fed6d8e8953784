"""Curated events: what a mapping produces, their ids, headers and Avro encoding."""
