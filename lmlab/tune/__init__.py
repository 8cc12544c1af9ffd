"""`lmlab.tune`: fine-tuning methods and task heads that wrap any lmlab model."""
