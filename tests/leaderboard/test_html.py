"""The leaderboard page: its markup here, its behaviour in a real headless Chromium.

The browser tests need Debian's `chromium` (apt-get install chromium) and the PyPI package
`playwright` (the `browser` extra), driven with the system browser: no Playwright download.
Without either they skip and say which is missing; any other failure fails.
"""

from __future__ import annotations

import math
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from mixtune.leaderboard.html import _ticks, render_html

DOMAINS = ("web", "code", "books", "wiki", "papers", "forums")
COLUMNS = [
    {"key": "dataset", "label": "dataset", "kind": "text"},
    {"key": "mixture", "label": "mixture", "kind": "text"},
    {"key": "scale", "label": "scale", "kind": "text"},
    {"key": "tokens", "label": "tokens", "kind": "int"},
    {"key": "core", "label": "CORE", "kind": "number", "digits": 4, "better": "higher"},
    {"key": "mean_bpb", "label": "mean BPB", "kind": "number", "digits": 4, "better": "lower"},
    {"key": "avg_log_ppl", "label": "avg log-ppl", "kind": "number", "digits": 3, "better": "lower"},
]
MIXTURES = {
    "doremi": (0.31, 0.24, 0.12, 0.14, 0.11, 0.08),
    "doremi-x2": (0.28, 0.27, 0.10, 0.15, 0.13, 0.07),
    "uniform": (1 / 6,) * 6,
}
# (mixture, scale, tokens, CORE, mean BPB, avg log-ppl): ranked by mean BPB, as given to the page
RESULTS = [
    ("doremi", "small", 6_553_600, 0.1850, {"mean": 1.7412, "std": 0.0061, "n": 3}, 3.412),
    ("doremi-x2", "small", 6_553_600, 0.1720, 1.7530, 3.431),
    ("uniform", "small", 6_553_600, None, 1.8104, None),
    ("doremi", "tiny", 1_638_400, {"mean": 0.1200, "std": 0.0100, "n": 2}, 1.9301, 3.902),
    ("doremi-x2", "tiny", 1_638_400, 0.1050, 1.9377, 3.915),
    ("uniform", "tiny", 1_638_400, {"mean": 0.0910, "std": 0.0080, "n": 2}, 1.9862, 4.010),
]


def realistic_board() -> dict:
    """6 models (3 mixtures × 2 scales), nulls, mean ± std cells, a 3-series CORE curve."""
    rows = []
    for i, (mix, scale, tokens, core, bpb, ppl) in enumerate(RESULTS):
        core_mean = core["mean"] if isinstance(core, dict) else core
        rows.append({
            "id": f"r{i + 1}",
            "values": {"dataset": "dev", "mixture": mix, "scale": scale, "tokens": tokens,
                       "core": core, "mean_bpb": bpb, "avg_log_ppl": ppl},
            "note": {"core": "20/22 tasks"} if scale == "small" and core is not None else {},
            "weights": dict(zip(DOMAINS, MIXTURES[mix], strict=True)),
            "tasks": {} if core is None else {
                "hellaswag": core_mean + 0.12, "arc_easy": core_mean + 0.25, "piqa": None},
            "links": {"eval": f"5f0c{i}e2a-7d1b-4c8e-9a55-1b2c3d4e5f6{i}",
                      "model": f"a1b2c3d4-{i}e5f-4a6b-8c7d-0e1f2a3b4c5{i}",
                      "dataset": "9d8c7b6a-5f4e-4d3c-2b1a-0f9e8d7c6b5a",
                      "model_path": f"runs/{mix}-{scale}/final"},
        })
    series = [{"label": f"{mix} · small",
               "points": [[t, round(end * (1 - math.exp(-2.5 * t / 6_553_600)) / 0.918, 4)]
                          for t in range(819_200, 6_553_601, 819_200)]}
              for mix, end in (("doremi", 0.18), ("doremi-x2", 0.165), ("uniform", 0.14))]
    return {"title": "mixtune leaderboard", "generated": "2026-11-24T10:00:00Z",
            "columns": COLUMNS, "rows": rows,
            "curves": {"metric": "CORE", "x": "training tokens", "series": series}}


HOSTILE = "<script>alert(1)</script>"


def hostile_board() -> dict:
    """Quotes and script tags wherever the data reaches the page."""
    bad = '"><script>alert(2)</script>'
    return {"title": HOSTILE, "generated": bad,
            "columns": [{"key": "mixture", "label": HOSTILE, "kind": "text"},
                        {"key": bad, "label": "x'\"", "kind": "number", "better": bad}],
            "rows": [{"id": bad, "values": {"mixture": "</script><b>", bad: 1.0},
                      "note": {bad: HOSTILE}, "weights": {"<i>": 1.0}, "tasks": {bad: 0.5},
                      "links": {bad: "</td></tr>"}}],
            "curves": {"metric": HOSTILE, "x": bad, "series": [{"label": bad, "points": [[1, 2]]}]}}


# --- the markup --------------------------------------------------------------------------------


def test_data_is_escaped():
    page = render_html(hostile_board())
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "alert(2)" in page and "<script>alert" not in page and "</script><b>" not in page
    assert page.count("<script>") == 2  # the page's own two
    assert_well_formed(page)


def test_mean_std_nulls_and_ints():
    page = render_html(realistic_board())
    assert ">0.1200 ± 0.0100<" in page and 'title="mean ± std over n = 2"' in page
    assert ">1.7412 ± 0.0061<" in page and "over n = 3" in page
    assert ">0.1850<small" in page  # a plain number, with its note below
    assert ">1,638,400<" in page and ">3.412<" in page  # digits per column
    nulls = re.findall(r'<td class="num null" data-v="">—</td>', page)
    assert len(nulls) == 2  # uniform · small: CORE and avg log-ppl
    assert 'title="web: 0.310\ncode: 0.240' in page  # the mixture cell's weights tooltip


def test_self_contained():
    page = render_html(realistic_board())
    assert "http://" not in page and "https://" not in page
    refs = re.findall(r'\b(?:src|href)="([^"]*)"', page)
    assert all(r.startswith("data:") for r in refs), refs
    assert "<link rel=\"stylesheet\"" not in page and "@import" not in page
    assert_well_formed(page)


def test_chart_is_drawn_only_with_points():
    board = realistic_board()
    page = render_html(board)
    assert page.count("<polyline") == 3 and page.count("<li><span") == 3
    assert page.index("</svg>") < page.index('<ul class="legend">')  # the legend is below
    for curves in (None, {}, {"series": []}, {"series": [{"label": "a", "points": [[1, None]]}]}):
        assert "<svg" not in render_html({**board, "curves": curves})


def test_ticks_are_round_and_cover_the_values():
    assert _ticks([409_600, 6_553_600]) == [0, 2e6, 4e6, 6e6, 8e6]
    assert _ticks([0.05, 0.185]) == [0.05, 0.1, 0.15, 0.2]
    assert _ticks([-0.3, 0.0123]) == [-0.3, -0.2, -0.1, 0.0, 0.1]
    assert _ticks([3.0, 3.0]) == [2.6, 2.8, 3.0, 3.2, 3.4]  # one value: a band around it


VOID = {"meta", "link", "br", "img", "input", "hr", "col", "source", "wbr"}
SVG_EMPTY = {"line", "path", "polyline", "circle"}


def assert_well_formed(page: str) -> None:
    """Every element that is opened is closed, in order (a cheap stand-in for a validator)."""
    stack: list[str] = []

    class Parser(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag not in VOID:
                stack.append(tag)

        def handle_startendtag(self, tag, attrs):
            assert tag in VOID | SVG_EMPTY, tag

        def handle_endtag(self, tag):
            assert stack and stack.pop() == tag, (tag, stack[-3:])

    assert page.startswith("<!DOCTYPE html>")
    Parser().feed(page)
    assert stack == []


# --- the page in Chromium ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium driven by Playwright; a skip that says what to install when missing."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        pytest.skip("playwright not installed: pip install -e '.[browser]'")
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium not found: apt-get install chromium")
    with sync_playwright() as p:
        try:
            chromium = p.chromium.launch(executable_path=exe)
        except Error as e:
            pytest.skip(f"chromium at {exe} did not start: {str(e).splitlines()[0]}")
        yield chromium
        chromium.close()


def open_page(browser, path: Path, board: dict, js: bool = True):
    """The board written to `path` and opened from file://; returns (page, problems) where
    problems collects console errors, page errors, dialogs and any non-file request."""
    path.write_text(render_html(board), encoding="utf-8")
    page = browser.new_context(java_script_enabled=js, viewport={"width": 1100, "height": 800}).new_page()
    problems: list[str] = []
    page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    page.on("request", lambda r: r.url.startswith(("file:", "data:"))
            or problems.append(f"request: {r.url}"))
    page.goto(path.as_uri())
    return page, problems


def core_order(page) -> tuple[list[str], list[str]]:
    """(row ids, CORE cell texts) in the order the table shows them."""
    ids = page.eval_on_selector_all("tbody tr.row", "rs => rs.map(r => r.dataset.id)")
    col = [c["key"] for c in COLUMNS].index("core") + 2  # nth-child: 1-based, after the toggle
    texts = page.locator(f"tbody tr.row td:nth-child({col})").all_inner_texts()
    return ids, [t.splitlines()[0] for t in texts]


def test_page_in_chromium(browser, tmp_path):
    board = realistic_board()
    page, problems = open_page(browser, tmp_path / "leaderboard.html", board)
    assert page.locator("tbody tr.row").count() == len(board["rows"]) == 6
    assert page.locator("tr.detail").first.is_hidden()

    # expand a row by clicking it: its weights, tasks and record ids appear
    first = page.locator("tbody tr.row").first
    first.locator("td").nth(2).click()
    detail = page.locator("#detail-0")
    assert detail.is_visible() and first.locator(".toggle").get_attribute("aria-expanded") == "true"
    assert detail.locator(".weights tr").count() == 6
    text = detail.inner_text()
    assert all(d in text for d in DOMAINS) and "0.310" in text and "runs/doremi-small/final" in text
    assert "hellaswag" in text and "0.3050" in text
    shot = os.environ.get("MIXTUNE_SCREENSHOT") or str(tmp_path / "leaderboard.png")
    page.screenshot(path=shot, full_page=True)
    first.locator(".toggle").click()  # the button folds it again
    assert detail.is_hidden()

    # sort by CORE: best (highest) first, then reversed; the null stays last both ways
    means = {r["id"]: (v["mean"] if isinstance(v := r["values"]["core"], dict) else v)
             for r in board["rows"]}
    known = sorted((i for i in means if means[i] is not None), key=lambda i: means[i])
    nulls = [i for i in means if means[i] is None]
    header = page.locator("thead th").nth(1 + [c["key"] for c in COLUMNS].index("core"))
    assert header.inner_text() == "CORE"
    header.locator("button").click()
    ids, texts = core_order(page)
    assert ids == known[::-1] + nulls and header.get_attribute("aria-sort") == "descending"
    assert texts == ["0.1850", "0.1720", "0.1200 ± 0.0100", "0.1050", "0.0910 ± 0.0080", "—"]
    header.locator("button").click()
    ids, texts = core_order(page)
    assert ids == known + nulls and header.get_attribute("aria-sort") == "ascending"
    assert texts[0] == "0.0910 ± 0.0080" and texts[-1] == "—"
    # each detail row moved with its row
    pairs = page.eval_on_selector_all(
        "tbody tr.row", "rs => rs.every(r => r.nextElementSibling.id === r.dataset.detail)")
    assert pairs
    assert problems == []


def test_page_reads_without_js(browser, tmp_path):
    page, problems = open_page(browser, tmp_path / "nojs.html", realistic_board(), js=False)
    assert page.locator("tbody tr.row").count() == 6
    assert page.locator("#detail-0").is_visible() and "runs/doremi-small/final" in page.inner_text("body")
    assert page.locator(".toggle").first.is_hidden()
    assert problems == []


def test_hostile_strings_stay_text_in_chromium(browser, tmp_path):
    page, problems = open_page(browser, tmp_path / "hostile.html", hostile_board())
    assert page.locator("h1").inner_text() == HOSTILE
    assert page.locator("tbody tr.row").count() == 1
    assert page.eval_on_selector("tbody tr.row", "r => r.dataset.id") == '"><script>alert(2)</script>'
    page.locator("tbody tr.row").click()
    assert "</td></tr>" in page.locator("#detail-0").inner_text()
    assert problems == []
