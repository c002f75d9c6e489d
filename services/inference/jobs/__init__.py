"""Batch jobs: the inference replicas' worker of durable job items (see README.md)."""
