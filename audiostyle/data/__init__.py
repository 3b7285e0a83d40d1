"""Data sources: the synthetic demo set, GTZAN, IRMAS and folder-per-domain layouts, local or s3://."""

from audiostyle.data.cache import FeatureCache
from audiostyle.data.dataset import AudioDataset, Clip
from audiostyle.data.load import load_dataset

__all__ = ["AudioDataset", "Clip", "FeatureCache", "load_dataset"]
