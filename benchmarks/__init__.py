"""Reproducible measurements. Each benchmark is `python -m benchmarks.<name> --out DIR` and writes a
JSON file and a markdown table under DIR (committed copies live in benchmarks/results/).

Machines here are 2 cores and noisy: report medians and ratios from one run, never a single
timing, and keep timing assertions out of the unit tests.
"""
