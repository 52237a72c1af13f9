from pathlib import Path

import pytest

from fastst.errors import FaststError
from fastst.report import BLOCK, update_readme

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_tables_are_those_of_results():
    assert BLOCK.search((ROOT / "README.md").read_text()), "the README has no generated table"
    assert update_readme(ROOT / "README.md", ROOT / "results", check=True) == []


def test_a_number_edited_by_hand_is_caught(tmp_path):
    readme = tmp_path / "README.md"
    text = (ROOT / "README.md").read_text()
    match = BLOCK.search(text)
    body = match["body"]
    digit = next(i for i, ch in enumerate(body) if ch.isdigit())
    edited = body[:digit] + str((int(body[digit]) + 1) % 10) + body[digit + 1 :]
    readme.write_text(text[: match.start("body")] + edited + text[match.end("body") :])
    assert update_readme(readme, ROOT / "results", check=True) == [match["name"]]
    assert update_readme(readme, ROOT / "results") == [match["name"]]
    assert readme.read_text() == text


def test_a_table_citing_a_missing_result_fails(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("<!-- results:no_such_result -->\n| |\n<!-- /results -->\n")
    with pytest.raises(FaststError):
        update_readme(readme, tmp_path, check=True)
