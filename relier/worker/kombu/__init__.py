"""Relier inside kombu's Redis transport: the reservation that rides in kombu's
delivery transaction, and the guards around its restore of unacked messages."""
