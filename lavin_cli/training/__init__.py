"""Training: the procedural task generator, folder datasets, the VAE and DiT trainers, evaluation."""
