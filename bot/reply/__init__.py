"""Replies: the report text, the outbox that sends it, subscribers' copies."""
