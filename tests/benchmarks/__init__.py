"""Tests of the benchmarks: they run end to end and write their tables."""
