"""sphere-rl: spectral-plasticity diagnostics and the SPHERE regularizer for MoE policies in continual RL."""

__version__ = "0.1.0"
