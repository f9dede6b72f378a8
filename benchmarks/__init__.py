"""Benchmarks: ratio-printing scripts, and the detection benchmark package (benchmarks.detection)."""
