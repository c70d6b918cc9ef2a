"""Models: the loss (losses), the converged linear head (head), fine-tuning (finetune), one run end to end
(train), its evaluation (metrics), and the two tables that fix a model's settings (baselines, select_l2)."""
