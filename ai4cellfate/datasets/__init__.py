"""Datasets: synthetic nuclei, and fate datasets from tracked time-lapse movies."""

from .synthetic import make_nuclei

__all__ = ["make_nuclei"]
