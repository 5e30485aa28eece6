"""Broker and topic configuration: Kafka names, defaults and resolution."""
