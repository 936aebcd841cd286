"""Fine-tuning: which weights a paradigm trains, NTK linearization, the batch order, the trainer and its
checkpoints."""
