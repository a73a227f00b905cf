"""What runs where: device and precision, the attention kernel, weight offload."""
