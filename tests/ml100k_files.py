"""A tiny synthetic MovieLens 100K folder for tests (never the real files)."""

from __future__ import annotations

from pathlib import Path

GENRES = ["unknown", "Action", "Comedy", "Drama"]
USERS = [
    "1|24|M|technician|85711",
    "2|53|F|other|94043",
    "3|23|M|writer|32067",
    "4|33|F|student|T8H1N",
    "5|61|M|retired|15213",
]
ITEMS = [
    "1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)|0|0|1|0",
    "2|GoldenEye (1995)|01-Jan-1995||http://imdb/goldeneye|0|1|0|0",
    "3|Amélie (2001)|25-Apr-2001||http://imdb/amelie|0|0|1|1",
    "4|unknown||||1|0|0|0",
    "5|Chasing Amy (1997)|4-Apr-1997||http://imdb/chasing|0|0|1|1",
    "6|Chasing Amy (1997)|4-Apr-1997||http://imdb/chasing2|0|0|1|1",
]
RATINGS = [
    (1, 1, 5, 881250949),
    (1, 2, 3, 881250950),
    (1, 3, 4, 881250951),
    (2, 1, 4, 881250952),
    (2, 5, 2, 881250953),
    (2, 6, 5, 881250954),
    (3, 2, 1, 881250955),
    (3, 3, 4, 881250956),
    (3, 4, 3, 881250957),
    (4, 1, 5, 881250958),
    (4, 3, 5, 881250959),
    (4, 5, 4, 881250960),
    (5, 2, 2, 881250961),
    (5, 6, 3, 881250962),
    (5, 1, 4, 881250963),
]


def write_ml100k(
    root: Path,
    *,
    data_lines: list[str] | None = None,
    item_lines: list[str] | None = None,
    user_lines: list[str] | None = None,
) -> Path:
    """Write a small ml-100k folder under ``root`` (u.item in Latin-1, as the real one)."""
    folder = root / "ml-100k"
    folder.mkdir(parents=True, exist_ok=True)
    lines = data_lines or ["\t".join(map(str, r)) for r in RATINGS]
    (folder / "u.data").write_text("\n".join(lines) + "\n", encoding="ascii")
    (folder / "u.item").write_bytes(("\n".join(item_lines or ITEMS) + "\n").encode("latin-1"))
    (folder / "u.user").write_text("\n".join(user_lines or USERS) + "\n")
    occupations = ["technician", "other", "writer", "student", "retired"]
    (folder / "u.occupation").write_text("\n".join(occupations) + "\n")
    (folder / "u.genre").write_text("".join(f"{g}|{i}\n" for i, g in enumerate(GENRES)) + "\n")
    return folder
