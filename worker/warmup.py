"""Build in the worker's main process, before it forks, what the job's libraries build lazily
the first time they need it; otherwise every work horse builds it again for its one book.

Found by profiling, in a fork of a freshly preloaded worker, what runs for the first page of
each kind and never again (bench/README.md, "The worker pipeline"):

- BeautifulSoup's tables of HTML entities and its two regexes over them (some 30 ms), built
  the first time ``html.parser`` meets a named entity such as ``&amp;``;
- soupsieve's compiled CSS selectors, and the regexes of its selector tokenizer (up to 100 ms
  for the selectors of a legacy page);
- the patterns the parser hands to ``re`` functions inline, which ``re`` compiles and caches;
- the source lines of a failed job's traceback (``linecache``): RQ formats it for the job's
  failure, reading and tokenizing the files it crosses (about 1 ms).

Parsing one small page of each layout, with every part the parser reads, builds the first
three; the files a traceback crosses are read ahead. tests/test_warm_horse.py counts what a
horse builds, on every kind of page.
"""

from __future__ import annotations

import linecache

import rq.job
import rq.worker.base

from worker import tasks
from worker.parser import parse_book_page

# The current layout, read from __NEXT_DATA__ (a description with an entity and a line break,
# the publication line from the markup).
_NEXT_PAGE = b"""<!DOCTYPE html><html><head><title>A</title></head><body>
<p data-testid="publicationInfo">Published <!-- -->May 5, 2015</p>
<script id="__NEXT_DATA__" type="application/json">{"props":{"pageProps":{"apolloState":{
"ROOT_QUERY":{"getBookByLegacyId({\\"legacyId\\":\\"1\\"})":{"__ref":"Book:b1"}},
"Book:b1":{"legacyId":1,"title":"A","description":"A &amp; B<br />C","imageUrl":"https://i.example/1.jpg",
"primaryContributorEdge":{"node":{"__ref":"Contributor:c1"},"role":"Author"},
"secondaryContributorEdges":[{"node":{"__ref":"Contributor:c1"},"role":"Translator"}],
"bookSeries":[{"userPosition":"2","series":{"__ref":"Series:s1"}}],
"bookGenres":[{"genre":{"name":"Fiction"}}],"work":{"__ref":"Work:w1"},
"details":{"isbn":"0000000000","numPages":10,"format":"Paperback","language":{"name":"English"},
"publicationTime":0}},
"Contributor:c1":{"name":"C"},"Series:s1":{"title":"S","webUrl":"https://www.goodreads.com/series/1-s"},
"Work:w1":{"legacyId":2,"editions":{"totalCount":3},
"stats":{"averageRating":4.1,"ratingsCount":5,"textReviewsCount":1,"ratingsCountDist":[1,1,1,1,1]},
"details":{"originalTitle":"A","publicationTime":0,"characters":[{"name":"D"}],"places":[{"name":"E"}],
"awardsWon":[{"name":"F","category":"G","awardedAt":0,"designation":"WINNER"}]}}}}}}</script>
</body></html>"""

# The current layout without usable __NEXT_DATA__: JSON-LD and the data-testid markup.
_MARKUP_PAGE = b"""<!DOCTYPE html><html><head>
<script type="application/ld+json">{"@type":"Book","name":"A","author":[{"name":"O&apos;B"}],
"aggregateRating":{"ratingValue":3.5,"ratingCount":20,"reviewCount":3},"isbn":"0000000000000"}</script>
</head><body>
<div class="BookPageTitleSection__title"><h3><a href="https://www.goodreads.com/series/1-s">S #2</a></h3>
<h1 data-testid="bookTitle">A</h1></div>
<div data-testid="description"><span class="Formatted">A &amp; B<br>C</span></div>
<p data-testid="publicationInfo">First published May 5, 2015</p>
<div data-testid="genresList"><span class="Button__labelItem">Poetry</span></div>
<div data-testid="labelTotal-5">6 (30%)</div><div data-testid="labelTotal-4">5 (25%)</div>
<div data-testid="labelTotal-3">4 (20%)</div><div data-testid="labelTotal-2">3 (15%)</div>
<div data-testid="labelTotal-1">2 (10%)</div>
<script id="__NEXT_DATA__" type="application/json">{"props":{"pageProps":{"apolloState":{}}}}</script>
</body></html>"""

# The legacy layout, with every row of its data box.
_LEGACY_PAGE = b"""<!DOCTYPE html><html><head><title>A</title></head><body>
<a href="/book/photo/1.A"><img id="coverImage" src="https://i.example/1.jpg"></a>
<h1 id="bookTitle">A</h1><h2 id="bookSeries"><a href="/series/1-s">(S #2)</a></h2>
<div id="bookAuthors"><div class="authorName__container"><a class="authorName" href="/author/show/1">C</a></div>
<div class="authorName__container"><a class="authorName" href="/author/show/2">D</a>
<span class="role">(Translator)</span></div></div>
<div id="bookMeta"><span itemprop="ratingValue">3.9</span><meta itemprop="ratingCount" content="12">
<meta itemprop="reviewCount" content="4"></div>
<div id="description"><span>A</span><span style="display:none">A &amp; B<br />C</span></div>
<div id="details"><div class="row"><span itemprop="bookFormat">Paperback</span>,
<span itemprop="numberOfPages">1,024 pages</span></div>
<div class="row">Published May 2003 by P (first published July 1954)</div>
<div id="bookDataBox">
<div class="infoBoxRowTitle">ISBN</div><div class="infoBoxRowItem">000000000X (ISBN13: 0000000000000)</div>
<div class="infoBoxRowTitle">Edition Language</div><div class="infoBoxRowItem" itemprop="inLanguage">English</div>
<div class="infoBoxRowTitle">Series</div><div class="infoBoxRowItem"><a href="/series/1-s">S #2</a></div>
<div class="infoBoxRowTitle">Characters</div><div class="infoBoxRowItem"><a href="/characters/1-d">D</a></div>
<div class="infoBoxRowTitle">Setting</div><div class="infoBoxRowItem"><a href="/places/1-e">E</a></div>
<div class="infoBoxRowTitle">Literary Awards</div><div class="infoBoxRowItem">
<a class="award" href="/award/show/1-f">F for G (1955)</a>, <a class="award" href="/award/show/2-h">H Nominee (1956)</a>
</div></div></div>
<a href="/work/editions/2-a">Other Editions (3)</a>
<script>renderRatingGraph([5, 4, 3, 2, 1]);</script>
<div class="elementList"><div class="left"><a class="bookPageGenreLink" href="/genres/f">Fiction</a></div></div>
<input type="hidden" name="book_id" value="1">
</body></html>"""

SAMPLE_PAGES = (_NEXT_PAGE, _MARKUP_PAGE, _LEGACY_PAGE)
# The files of the frames between RQ's horse and the job's own code.
TRACEBACK_MODULES = (rq.worker.base, rq.job, tasks)


def warm() -> None:
    """Parse a sample page of each layout, building what the parser's libraries build once, and
    read the source a failed job's traceback shows."""
    for page in SAMPLE_PAGES:
        parse_book_page(page, "1")
    for module in TRACEBACK_MODULES:
        linecache.getlines(module.__file__ or "")
