"""audiostyle: distributed hyperparameter sweeps for audio style transfer."""

__version__ = "0.1.0"
