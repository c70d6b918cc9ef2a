"""Benchmarks: make bench (bench: harness vs naive at the same answer; cost: the cost grid and the timed
sweep both run) and make bench-gpu (gpu: fine-tuning throughput vs the Hugging Face Trainer)."""
