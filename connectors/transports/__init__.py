"""Inbound transports: signed webhooks, polling, file drops and partner Kafka topics.

Each transport turns what it received into native records and hands them to `edge.Edge`, which
translates, publishes the canonical events on ``youhu.events.v1`` and dead-letters the rest.
"""
