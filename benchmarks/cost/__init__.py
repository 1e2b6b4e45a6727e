"""`make bench`: the cost benchmark (benchmarks/bench_cost.py is its entry; docs/cost.md its method)."""
