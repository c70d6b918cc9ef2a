"""Models: the loss (losses), the converged linear head (head), fine-tuning (finetune; decoupled: fine-tuned
features), one run end to end (train) and its evaluation (metrics), the baseline table and the head's l2."""
