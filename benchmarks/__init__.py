"""The benchmark suite: what the blueprint costs over the database's own work.

Run it with ``python -m benchmarks`` (see ``benchmarks/README.md``).
"""
