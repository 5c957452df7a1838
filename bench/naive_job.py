"""The worker benchmark's naive baseline job, as the original tutorial wrote it: every
import inside the job (so each forked work horse imports them again) and a full-tree
``html.parser`` parse of the page."""


def parse_book(book_id: str) -> None:
    import pickle

    import requests
    from bs4 import BeautifulSoup
    from redis import Redis
    from rq import get_current_job

    from books.settings import Settings

    settings = Settings.from_env()
    html = requests.get(f"{settings.origin}/book/show/{book_id}", timeout=20).text
    soup = BeautifulSoup(html, "html.parser")
    record = {
        "book_id": book_id,
        "title": soup.find("h1").get_text(strip=True) if soup.find("h1") else None,
        "description": soup.find(attrs={"data-testid": "description"}).get_text(" ", strip=True)
        if soup.find(attrs={"data-testid": "description"})
        else None,
    }
    connection: Redis = get_current_job().connection
    connection.set(f"naive:book:{book_id}", pickle.dumps(record))
