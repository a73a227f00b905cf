"""Measuring a model: metrics, held-out scenes, the baseline and task switching (`lavin eval`)."""
