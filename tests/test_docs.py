"""The documents stay whole as they are split and edited: every setting documented, every
relative link leading to a file and heading that exist, the README's run and test commands
where the CI check and a new user look for them."""

from __future__ import annotations

import importlib.util
import re
from dataclasses import fields
from pathlib import Path

import pytest

from books.settings import Settings
from tests.processes import ROOT

DOCUMENTS = [ROOT / "README.md", ROOT / "tests" / "README.md", ROOT / "bench" / "README.md"] + sorted(
    (ROOT / "docs").glob("*.md")
)
# The README is a user's guide; reference material lives in docs/, tests/README.md and bench/README.md.
README_MAX_BYTES = 25_000
# A Markdown link or image: [text](target) with no space in the target.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")


def prose(text: str) -> str:
    """The text without code blocks or inline code, where brackets are not links."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def anchors(path: Path) -> set[str]:
    """The fragments GitHub gives a document's headings: lower case, punctuation dropped, spaces
    as hyphens, a repeated one numbered."""
    slugs, counts = set(), dict[str, int]()
    for line in FENCE.sub("", path.read_text()).splitlines():
        heading = re.match(r"#{1,6} (.+)", line)
        if heading:
            slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
            count = counts.get(slug, 0)
            slugs.add(slug if count == 0 else f"{slug}-{count}")
            counts[slug] = count + 1
    return slugs


def relative_links(path: Path) -> list[str]:
    return [target for target in LINK.findall(prose(path.read_text())) if not re.match(r"[a-z]+:", target)]


def test_the_readme_stays_a_guide_a_newcomer_reads():
    size = len((ROOT / "README.md").read_bytes())
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes: move details to docs/ or the other READMEs"


def test_every_setting_is_in_the_configuration_document():
    document = (ROOT / "docs" / "configuration.md").read_text()
    missing = [f.name.upper() for f in fields(Settings) if f"`{f.name.upper()}`" not in document]
    assert not missing, f"docs/configuration.md does not document {missing}"


def broken_links(document: Path) -> list[str]:
    """The relative links of a document whose file, or heading in a Markdown file, is missing."""
    broken = []
    for link in relative_links(document):
        target, _, fragment = link.partition("#")
        path = (document.parent / target).resolve() if target else document
        if not path.exists():
            broken.append(f"{link}: no such file")
        elif fragment and path.suffix == ".md" and fragment not in anchors(path):
            broken.append(f"{link}: no such heading")
    return broken


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_leads_to_a_file_and_heading_that_exist(document):
    assert not broken_links(document)


def test_the_link_check_finds_broken_links(tmp_path):
    (tmp_path / "other.md").write_text("# Other\n")
    document = tmp_path / "doc.md"
    document.write_text(
        "# A title\n\n## Run `it`: now\n\n## Run it now\n\n```\n# not a heading\n[no](link.md)\n```\n"
        "[ok](#run-it-now-1) [ok](other.md#other) `[no](code.md)` [gone](missing.md) [nowhere](#none)"
        " [elsewhere](other.md#none) [web](https://example.com/x)\n"
    )
    assert anchors(document) == {"a-title", "run-it-now", "run-it-now-1"}
    assert broken_links(document) == [
        "missing.md: no such file",
        "#none: no such heading",
        "other.md#none: no such heading",
    ]


def test_the_readme_keeps_its_run_and_test_commands():
    spec = importlib.util.spec_from_file_location("check_run_command", ROOT / ".ci" / "check_run_command.py")
    assert spec and spec.loader
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    readme = (ROOT / "README.md").read_text()
    assert "honcho start" in check.run_command(readme)
    assert "\nbash .ci/run " in readme
