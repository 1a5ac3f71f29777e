"""The review queue: durable priority queue, the supervised reviewers, the event log, agreement."""
