"""Data sources: the synthetic demo set, GTZAN, IRMAS and folder-per-domain layouts, local or s3://."""

from audiostyle.data.dataset import AudioDataset, Clip

__all__ = ["AudioDataset", "Clip"]
