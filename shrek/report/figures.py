"""Matplotlib figures of the EDA and comparison notebooks.

Every function returns the :class:`~matplotlib.figure.Figure` (so a notebook cell shows it) and,
given ``save_to``, also writes it there as ``<name>.png``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from shrek.data.demographics import AGE_BANDS, age_band  # noqa: E402


def rating_distribution(ratings: pd.DataFrame, *, save_to: str | Path | None = None) -> Figure:
    """Bar chart of how often each rating value occurs."""
    counts = ratings["rating"].value_counts().sort_index()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(counts.index.astype(str), counts.to_numpy(), color="#4c72b0")
    ax.set(xlabel="rating", ylabel="ratings", title=f"Rating distribution ({len(ratings):,})")
    return _finish(fig, save_to, "rating_distribution")


def long_tails(ratings: pd.DataFrame, *, save_to: str | Path | None = None) -> Figure:
    """Ratings per user and per movie, sorted, on log scales: the long tails."""
    per_user = np.sort(ratings.groupby("user_id").size().to_numpy())[::-1]
    per_movie = np.sort(ratings.groupby("movie_id").size().to_numpy())[::-1]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    left.plot(np.arange(1, len(per_user) + 1), per_user)
    left.set(
        xscale="log", yscale="log", xlabel="user rank", ylabel="ratings", title="Activity per user"
    )
    right.plot(np.arange(1, len(per_movie) + 1), per_movie, color="#dd8452")
    right.set(
        xscale="log",
        yscale="log",
        xlabel="movie rank",
        ylabel="ratings",
        title="Popularity per movie",
    )
    share = per_movie[: max(1, len(per_movie) // 10)].sum() / per_movie.sum()
    right.annotate(
        f"top 10% of movies: {share:.0%} of ratings", xy=(0.05, 0.05), xycoords="axes fraction"
    )
    return _finish(fig, save_to, "long_tails")


def genre_breakdown(
    ratings: pd.DataFrame, movies: pd.DataFrame, *, save_to: str | Path | None = None
) -> Figure:
    """Ratings per genre and the mean rating of each genre."""
    genres = movies[["movie_id", "genres"]].assign(genre=movies["genres"].str.split("|"))
    genres = genres.explode("genre")
    genres = genres[genres["genre"].notna() & (genres["genre"] != "")]
    joined = ratings.merge(genres[["movie_id", "genre"]], on="movie_id")
    stats = joined.groupby("genre")["rating"].agg(["size", "mean"]).sort_values("size")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 5), sharey=True)
    left.barh(stats.index, stats["size"], color="#55a868")
    left.set(xlabel="ratings", title="Ratings per genre")
    right.barh(stats.index, stats["mean"], color="#c44e52")
    right.set(xlabel="mean rating", xlim=(1, 5), title="Mean rating per genre")
    return _finish(fig, save_to, "genre_breakdown")


def demographics(users: pd.DataFrame, *, save_to: str | Path | None = None) -> Figure:
    """Users by age band, gender and occupation."""
    bands = age_band(users["age"]).value_counts().reindex(list(AGE_BANDS), fill_value=0)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    axes[0].bar(bands.index, bands.to_numpy(), color="#8172b3")
    axes[0].set(title="Users by age band", ylabel="users")
    gender = users["gender"].value_counts()
    axes[1].bar(gender.index, gender.to_numpy(), color="#937860")
    axes[1].set(title="Users by gender")
    occupation = users["occupation"].value_counts().sort_values()
    axes[2].barh(occupation.index, occupation.to_numpy(), color="#da8bc3")
    axes[2].set(title="Users by occupation")
    return _finish(fig, save_to, "demographics")


def model_comparison(table: pd.DataFrame, *, save_to: str | Path | None = None) -> Figure:
    """Grouped bars of every metric at k per model, one panel per split.

    ``table`` is :func:`shrek.pipeline.stages.comparison_table` output.
    """
    metrics = [c for c in table.columns if "@" in c and not c.startswith("coverage")]
    splits = table.index.get_level_values("split").unique()
    fig, axes = plt.subplots(1, len(splits), figsize=(6 * len(splits), 4), sharey=True)
    for ax, split in zip(np.atleast_1d(axes), splits, strict=True):
        part = table.loc[split, metrics]
        width = 0.8 / len(part)
        for i, (model, row) in enumerate(part.iterrows()):
            ax.bar(np.arange(len(metrics)) + i * width, row.to_numpy(), width, label=model)
        ax.set_xticks(np.arange(len(metrics)) + 0.4 - width / 2, metrics)
        ax.set(title=f"{split} split")
        ax.legend()
    return _finish(fig, save_to, "model_comparison")


def _finish(fig: Figure, save_to: str | Path | None, name: str) -> Figure:
    fig.tight_layout()
    if save_to is not None:
        folder = Path(save_to)
        folder.mkdir(parents=True, exist_ok=True)
        fig.savefig(folder / f"{name}.png", dpi=110)
    plt.close(fig)
    return fig
