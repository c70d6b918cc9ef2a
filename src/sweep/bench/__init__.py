"""Benchmarks: make bench (bench: harness vs naive at the same answer; ideas; cost: the cost grid) and make
bench-gpu (gpu: its CLI; gpu_harness, gpu_trainer, gpu_real: the harness, the Trainer reference, real data)."""
