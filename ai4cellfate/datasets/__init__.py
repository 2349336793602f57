"""Datasets: synthetic nuclei, and fate datasets from tracked time-lapse movies."""

from ._context import temporal_context
from ._fate import FateDataset
from ._frames import FrameSequence
from .ctc import CTCSequence, load_ctc, read_ctc
from .synthetic import make_nuclei
from .trackmate import TrackMateTracks, load_trackmate, read_trackmate, read_trackmate_csv
from .tracks import make_fate_dataset

__all__ = [
    "CTCSequence",
    "FateDataset",
    "FrameSequence",
    "TrackMateTracks",
    "load_ctc",
    "load_trackmate",
    "make_fate_dataset",
    "make_nuclei",
    "read_ctc",
    "read_trackmate",
    "read_trackmate_csv",
    "temporal_context",
]
