"""Benchmarks: locust ladders with per-step Triton statistics, pipeline overhead, GPU engine, capacity model."""
