"""The benchmark: the five services against the minimal relay (docs/benchmarks.md)."""
