"""Data layer: MovieLens 100K and the four tables (ratings, users, movies, watch log)."""

from shrek.data.dataset import Dataset, DataVersion
from shrek.data.movielens import load_movielens_100k, slugify
from shrek.data.splits import stratified_split, temporal_split

__all__ = [
    "DataVersion",
    "Dataset",
    "load_movielens_100k",
    "slugify",
    "stratified_split",
    "temporal_split",
]
