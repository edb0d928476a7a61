"""The book's benchmark harness (not part of the installed library): ``python -m benchmarks``."""
