"""Page parser speed on the real pages in ../shared/goodreads-pages/, against a naive full-tree parse.

    pipenv run python bench/parse_pages.py [--repeat 20] [--pages DIR]

For each page: the median time of the project's parser (worker.parser.parse_book_page)
and of ``BeautifulSoup(html, "html.parser")`` (a full tree, extracting nothing),
both on the same bytes in the same run, on one core; then pages per second and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from bs4 import BeautifulSoup

from worker.parser import parse_book_page

DEFAULT_PAGES = Path(__file__).resolve().parents[2] / "shared" / "goodreads-pages" / "pages"


def median_ms(work, page: bytes, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work(page)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--pages", type=Path, default=DEFAULT_PAGES)
    args = parser.parse_args()
    pages = sorted(args.pages.glob("*.html"))
    if not pages:
        sys.exit(f"no pages in {args.pages}")

    print(f"{'page':28} {'KB':>5} {'project ms':>11} {'naive ms':>9} {'ratio':>6}")
    rows = []
    for path in pages:
        page = path.read_bytes()
        ours = median_ms(parse_book_page, page, args.repeat)
        naive = median_ms(lambda data: BeautifulSoup(data, "html.parser"), page, max(3, args.repeat // 4))
        rows.append((path.stem, ours, naive))
        print(f"{path.stem:28} {len(page) // 1024:5} {ours:11.2f} {naive:9.1f} {naive / ours:5.0f}x")

    for layout in ("next", "legacy"):
        chosen = [row for row in rows if row[0].startswith(layout)]
        ours = statistics.median(row[1] for row in chosen)
        naive = statistics.median(row[2] for row in chosen)
        print(
            f"{layout:7} layout: median {ours:.2f} ms/page ({1000 / ours:.0f} pages/s) vs naive "
            f"{naive:.1f} ms/page ({1000 / naive:.1f} pages/s): {naive / ours:.0f}x faster"
        )


if __name__ == "__main__":
    main()
