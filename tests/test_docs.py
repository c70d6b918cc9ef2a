"""The documentation a newcomer reads: guides in docs/ without dates or sessions in their headings, dated
measurements in docs/results/, no issue numbers a reader cannot look up, README.md and docs/develop.md short,
and every relative link of README.md and docs/**/*.md (files, images, #anchors) resolving."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README_LIMIT = 12_000
DEVELOP_LIMIT = 4_000
RESULTS = ROOT / "docs" / "results"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
GUIDES = [p for p in DOCS if not p.is_relative_to(RESULTS)]
CITED = [ROOT / "README.md", *(p for d, ext in [("docs", "md"), ("src", "py"), ("conf", "yaml")]
                             for p in sorted((ROOT / d).rglob(f"*.{ext}")))]  # fmt: skip
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
CODE = re.compile(r"`[^`\n]*`")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$", re.M)
MONTHS = "jan(uary)?|feb(ruary)?|mar(ch)?|apr(il)?|may|june?|july?|aug(ust)?|sep(t|tember)?|oct(ober)?"
MONTHS += "|nov(ember)?|dec(ember)?"
DATE = rf"\b\d{{4}}-\d{{2}}(-\d{{2}})?\b|\b({MONTHS})\.?\s+\d{{4}}\b"
DATED = re.compile(rf"{DATE}|\bsession\b", re.I)  # a date, a month and year, or a session: not in a guide's heading
ISSUE = re.compile(r"\bissues?\s+#?\d+", re.I)


def prose(text: str) -> str:
    """The text without fenced code blocks and inline code, where a [x](y) is not a link."""
    return CODE.sub("", FENCE.sub("", text))


def links(path: Path) -> list[str]:
    return LINK.findall(prose(path.read_text(encoding="utf-8")))


def headings(text: str) -> list[str]:
    return [m.group(2) for m in HEADING.finditer(FENCE.sub("", text))]


def slug(heading: str) -> str:
    """GitHub's heading id: lower case, punctuation dropped (inline code's backticks too), spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """A file's heading ids, -1, -2... for repeats, as GitHub numbers them."""
    seen: dict[str, int] = {}
    out = set()
    for h in headings(path.read_text(encoding="utf-8")):
        s = slug(h)
        n = seen.get(s, 0)
        seen[s] = n + 1
        out.add(s if n == 0 else f"{s}-{n}")
    return out


def rel(p: Path) -> str:
    return str(p.relative_to(ROOT))


def test_readme_is_at_most_12000_characters():
    size = len((ROOT / "README.md").read_text(encoding="utf-8"))
    assert size <= README_LIMIT, f"README.md has {size:,} characters (limit {README_LIMIT:,}): move detail to docs/"


def test_the_contributors_page_is_at_most_4000_characters():
    size = len((ROOT / "docs" / "develop.md").read_text(encoding="utf-8"))
    assert size <= DEVELOP_LIMIT, f"docs/develop.md has {size:,} characters (limit {DEVELOP_LIMIT:,}): say less"


def test_the_link_pattern_finds_links_and_skips_code():
    text = "see [a](docs/a.md), ![pic](x.png) and [b](https://x.org)\n```\n[c](no.md)\n```\n`[d](no2.md)`\n"
    assert LINK.findall(prose(text)) == ["docs/a.md", "x.png", "https://x.org"]


def test_the_patterns_tell_dates_sessions_and_issue_numbers_from_other_text():
    dated = ["Measured (2026-12-01)", "after the cuts (fourth session)", "The solver (since March 2026)", "Nov 2026"]
    plain = ["The solver", "Sessions of a GPU machine", "113 classes x 58K texts", "make bench-gpu: 8.6x"]
    assert all(DATED.search(h) for h in dated) and not any(DATED.search(h) for h in plain)
    assert ISSUE.search("benchmark (issue 4)") and ISSUE.search("as issues 11 and 12 say")
    assert not ISSUE.search("the CFPB issue field, data.label_field=issue, 100+ classes")
    assert slug("`make bench-gpu` on one H200 (2026-11-28)") == "make-bench-gpu-on-one-h200-2026-11-28"


@pytest.mark.parametrize("doc", GUIDES, ids=rel)
def test_no_guide_heading_carries_a_date_or_a_session(doc: Path):
    bad = [h for h in headings(doc.read_text(encoding="utf-8")) if DATED.search(h)]
    assert not bad, f"{rel(doc)}: headings with a date or a session (dated logs go to docs/results/): {bad}"


def test_no_text_cites_an_issue_number():
    bad = []
    for path in CITED:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if ISSUE.search(line):
                bad.append(f"{rel(path)}:{n}: {line.strip()[:100]}")
    assert not bad, "issue numbers a reader cannot look up (say what it is instead):\n" + "\n".join(bad)


@pytest.mark.parametrize("result", sorted(RESULTS.glob("*.md")), ids=rel)
def test_each_results_file_has_dated_entries(result: Path):
    if result.name == "README.md":
        return
    entries = [h for h in headings(result.read_text(encoding="utf-8")) if h.startswith(("2026", "20"))]
    dated = [h for h in entries if re.match(r"\d{4}-\d{2}-\d{2}: ", h)]
    assert dated, f"{rel(result)}: no entry headed 'YYYY-MM-DD: what was measured' (docs/results/README.md)"
    assert dated == entries, f"{rel(result)}: entries not headed 'YYYY-MM-DD: ...': {set(entries) - set(dated)}"


@pytest.mark.parametrize("doc", DOCS, ids=rel)
def test_every_relative_link_resolves(doc: Path):
    broken = []
    for target in links(doc):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:: not checked here
            continue
        file_part, _, anchor = target.partition("#")
        dest = (doc.parent / file_part).resolve() if file_part else doc
        if not dest.exists():
            broken.append(f"{target}: no file {rel(dest) if dest.is_relative_to(ROOT) else dest}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {rel(dest)}")
    assert not broken, f"{rel(doc)}: broken links:\n" + "\n".join(broken)


def test_the_guides_are_linked_from_the_readme():
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in links(ROOT / "README.md")}
    top = [p for p in DOCS[1:] if p.parent == ROOT / "docs"] + [RESULTS / "README.md"]
    missing = [rel(p) for p in top if p.resolve() not in linked]
    assert not missing, f"docs not linked from README.md: {missing}"
