"""The ledger: every question asked of the Dagster instance about releases, answered by index.

Each question is a partition-filtered record query, a latest-event-per-partition lookup, an indexed tag lookup or
a run-tag filter, so its answer and its cost depend only on the environment and release asked about, never on how
many events other environments or releases have (bench/ledger.py measures it at 100 and 10,000 deploys).
"""
