"""Prefect flows: orchestration only (order, gating, retries, artifacts). No media logic here."""
