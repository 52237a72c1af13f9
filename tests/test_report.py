import json
from pathlib import Path

import pytest

from fastst.errors import FaststError
from fastst.report import BLOCK, markdown_files, update_readme, update_tables

ROOT = Path(__file__).resolve().parent.parent
FILES = markdown_files(ROOT)


def _first_block(files=FILES):
    """The first file holding a generated table, its text and that table's match."""
    for file in files:
        text = file.read_text()
        match = BLOCK.search(text)
        if match:
            return file, text, match
    raise AssertionError("no generated table in README.md or docs/*.md")


def test_the_tables_of_the_readme_and_docs_are_those_of_results():
    assert FILES[0] == ROOT / "README.md"
    assert {f.name for f in FILES[1:]} >= {"architecture.md", "time_to_quality.md", "performance.md"}
    names = [m["name"] for f in FILES for m in BLOCK.finditer(f.read_text())]
    assert names, "neither the README nor docs/ has a generated table"
    assert update_tables(FILES, ROOT / "results", check=True) == {}


def test_a_number_edited_by_hand_is_caught(tmp_path):
    source, text, match = _first_block()
    page = tmp_path / "edited" / source.name
    page.parent.mkdir()
    body = match["body"]
    digit = next(i for i, ch in enumerate(body) if ch.isdigit())
    edited = body[:digit] + str((int(body[digit]) + 1) % 10) + body[digit + 1 :]
    page.write_text(text[: match.start("body")] + edited + text[match.end("body") :])
    untouched = tmp_path / "untouched.md"
    untouched.write_text("no tables here\n")
    assert update_tables([untouched, page], ROOT / "results", check=True) == {page: [match["name"]]}
    assert update_readme(page, ROOT / "results") == [match["name"]]
    assert page.read_text() == text


def test_every_docs_page_is_covered(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("")
    (tmp_path / "docs" / "b.md").write_text("")
    (tmp_path / "docs" / "a.md").write_text("")
    (tmp_path / "docs" / "notes.txt").write_text("")
    docs = tmp_path / "docs"
    assert markdown_files(tmp_path) == [tmp_path / "README.md", docs / "a.md", docs / "b.md"]


def test_a_table_citing_a_missing_result_fails(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("<!-- results:no_such_result -->\n| |\n<!-- /results -->\n")
    with pytest.raises(FaststError):
        update_readme(readme, tmp_path, check=True)


def _study_checkout(tmp_path, study: str):
    """A checkout with one result, written by ``tools/study.py`` (whose source is ``study``), and a page
    citing it."""
    (tmp_path / "results").mkdir()
    (tmp_path / "tools").mkdir()
    result = {"name": "counts", "command": "study.py --fast", "machine": {}, "counts": [3, 1]}
    (tmp_path / "results" / "counts.json").write_text(json.dumps(result))
    (tmp_path / "tools" / "study.py").write_text(study)
    page = tmp_path / "README.md"
    page.write_text("<!-- results:counts -->\n<!-- /results -->\n")
    return page


def test_a_table_is_the_one_the_study_that_wrote_the_result_makes(tmp_path):
    page = _study_checkout(
        tmp_path,
        "def table(result):\n"
        "    rows = [[i, n] for i, n in enumerate(result['counts'])]\n"
        "    total = {'columns': ['sum'], 'rows': [[4]], 'note': 'x'}\n"
        "    return [{'columns': ['i', 'n'], 'rows': rows}, total]\n",
    )
    assert update_readme(page, tmp_path / "results") == ["counts"]
    table = "| i | n |\n|---|---|\n| 0 | 3 |\n| 1 | 1 |\n\n| sum |\n|---|\n| 4 |\n\nx\n"
    assert page.read_text() == f"<!-- results:counts -->\n{table}<!-- /results -->\n"


def test_a_study_without_a_table_fails(tmp_path):
    page = _study_checkout(tmp_path, "def main():\n    pass\n")
    with pytest.raises(FaststError, match="defines no table"):
        update_readme(page, tmp_path / "results", check=True)


def test_the_any_style_summary_pools_every_painting_and_photo():
    """tools/any_style.py's summary, against medians and counts worked out by hand on three paintings."""
    from fastst.report import _study

    any_style = _study(ROOT / "tools" / "any_style.py")

    def method(*ratios):  # a painting's row: a ratio a photo, content its square and style twice it; medians
        photos = {
            f"p{i}": {"optimality_ratio": r, "content": r * r, "style": 2 * r} for i, r in enumerate(ratios)
        }
        mid = sorted(ratios)[len(ratios) // 2]
        return {"optimality_ratio": mid, "content": mid * mid, "style": 2 * mid, "photos": photos}

    peer, one = "peer any-style", "one pass"
    scores = {
        "a": {peer: method(3.0, 5.0, 4.0), one: method(2.0, 6.0, 3.5)},
        "b": {peer: method(2.0, 2.5, 3.0), one: method(2.6, 2.7, 2.8), "only b": method(1, 1, 1)},
        "c": {peer: method(1.0, 2.0, 3.0), one: method(2.0, 2.0, 2.0)},  # level with the peer: not below it
    }
    trained = {"a": {one: ("m", 60.0)}, "b": {one: ("m", 90.0)}, "c": {one: ("m", 300.0)}}
    spec = any_style.summary_table(scores, trained)
    assert spec["columns"][0] == "method (3 held-out paintings, 3 photos each)"
    peer_row, one_row = spec["rows"]  # "only b" is not scored on every painting: no row
    # peer: 3, 5, 4, 2, 2.5, 3, 1, 2, 3 -> 3.0 (content 9.0, style 6.0)
    assert peer_row == [peer, "", "3.00", "", "", "9.0", "6.0"]
    # one pass: 2, 6, 3.5, 2.6, 2.7, 2.8, 2, 2, 2 -> 2.6; below the peer on a only; trained 60, 90, 300 s
    assert one_row == [one, "90 s", "2.60", "1 of 3", "1 of 3", "6.8", "5.2"]
    # the README's table of such a run: the same summary, without the average painting's row
    result = {
        "also": {"on the base": "anystyle_base"},
        "finetuned": {p: {one: {"model": "m", "training_seconds": t[one][1]}} for p, t in trained.items()},
        "quality": {p: {**rows, any_style.AVERAGE: rows[one]} for p, rows in scores.items()},
        "machine": {"cpu": "a CPU", "threads": 2},
        "command": "any_style.py",
    }
    assert any_style.table(result)["rows"] == spec["rows"]
