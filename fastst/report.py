"""The tables of the README and of docs/, generated from ``results/*.json``
(``python -m fastst report-tables``).

A table sits in a Markdown file (README.md or a page of docs/) between ``<!-- results:NAME -->`` and
``<!-- /results -->``, where NAME is a result file's name; this module renders it again from that file,
so that a number in the table is the number a command wrote, and the test suite fails when the two
disagree.

Every table is rendered from a column specification, ``{"columns": [...], "rows": [[...], ...]}`` with
its cells as they are to be shown and an optional ``"note"`` below it. ``FILE.TABLE`` is a specification
the result FILE carries under ``"tables"``; a plain ``NAME`` asks the study that wrote the result (the
script of ``tools/`` its command names) for its specifications, through that script's ``table(result)``.
No study is imported here: a study is loaded from its file only when a page cites its result.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import sys
from pathlib import Path
from types import ModuleType

from fastst.errors import FaststError
from fastst.host import NATIVE_BF16_FLAGS
from fastst.results import read_result, results_dir

BLOCK = re.compile(r"(<!-- results:(?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- /results -->)", re.S)


def minutes_cell(seconds) -> str:
    """Seconds as minutes to one decimal; ``None`` (a target never reached) as "never"."""
    return "never" if seconds is None else f"{seconds / 60:.1f} min"


def ratio_cell(value) -> str:
    """A ratio to two decimals, or "n/a"."""
    return "n/a" if value is None else f"{value:.2f}"


def three_figures(value: float) -> str:
    """``value`` to three significant figures, with thousands separated: 31,700, 4.39, 83,300."""
    rounded = float(f"{value:.3g}")
    return f"{rounded:,.0f}" if rounded >= 1000 else f"{rounded:g}"


# the widest vector extension a CPU has, as a table's note names it (matmul rates differ by these)
VECTOR_FLAGS = (
    ("amx_bf16", "AMX"),
    ("avx512_bf16", "AVX-512 BF16"),
    ("avx512f", "AVX-512"),
    ("avx2", "AVX2"),
)


def measured_on(result: dict) -> str:
    """The machine and the command of a result, as a table's note cites them."""
    m = result["machine"]
    rate, bf16 = m.get("matmul_fp32_gflops"), m.get("matmul_bf16_gflops")
    flags = m.get("cpu_flags", [])
    native_bf16 = any(flag in flags for flag in NATIVE_BF16_FLAGS) or m.get("gpu")
    vector = next(
        (name for flag, name in VECTOR_FLAGS if flag in flags), "no AVX2" if "cpu_flags" in m else None
    )
    return (
        f"{m['cpu']}"
        + (f" ({vector})" if vector else "")
        + f", {m['threads']} thread{'s' if m['threads'] != 1 else ''}"
        + (f", fp32 matmul {rate:.0f} GFLOP/s" if rate else "")
        + (f", bf16 {bf16:.0f}" if bf16 and native_bf16 else "")
        + f"; `{result['command']}`"
    )


def spec_table(spec: dict) -> str:
    """A Markdown table from its specification (``columns``, ``rows`` of cells as shown, an optional
    ``note`` under it)."""
    lines = ["| " + " | ".join(spec["columns"]) + " |", "|" + "---|" * len(spec["columns"])]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in spec["rows"]]
    if spec.get("note"):
        lines += ["", spec["note"]]
    return "\n".join(lines)


@functools.lru_cache(maxsize=None)
def _study(script: Path) -> ModuleType:
    """The study ``script`` loaded from its file (its ``main()`` does not run), with its folder on the
    path while it loads, as when it runs, for the studies it draws on."""
    spec = importlib.util.spec_from_file_location(f"study_{script.stem}", script)
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(script.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(script.parent))
    return module


def study_tables(result: dict, tools: Path) -> list[dict]:
    """The table specifications that the study which wrote ``result`` (the script of ``tools`` that the
    result's command names) makes of it."""
    script = Path(tools) / Path(result.get("command", "").split(" ")[0]).name
    if script.suffix != ".py" or not script.is_file():
        raise FaststError(f"results/{result['name']}.json carries no table, and no study in {tools} wrote it")
    table = getattr(_study(script.resolve()), "table", None)
    if table is None:
        raise FaststError(f"{script} defines no table(result) for results/{result['name']}.json")
    specs = table(result)
    return [specs] if isinstance(specs, dict) else specs


def render(name: str, folder: str | os.PathLike | None = None) -> str:
    """The table of result ``name``; ``FILE.TABLE`` is the table TABLE that result FILE carries. The
    studies are those of ``tools/`` beside the results folder."""
    folder = Path(folder or results_dir())
    file, _, table = name.partition(".")
    try:
        result = read_result(file, folder)
    except FileNotFoundError:
        raise FaststError(f"a table cites results/{file}.json, which does not exist") from None
    if table:
        if table not in result.get("tables", {}):
            raise FaststError(f"results/{file}.json holds no table {table!r}")
        spec = result["tables"][table]
        return spec_table({"note": f"Measured on {measured_on(result)}.", **spec})
    return "\n\n".join(spec_table(spec) for spec in study_tables(result, folder.parent / "tools"))


def update_readme(
    readme: str | os.PathLike, folder: str | os.PathLike | None = None, check: bool = False
) -> list[str]:
    """Render every table of the Markdown file ``readme`` again; write them (or, with ``check``, only
    report). Returns the names of the tables that differed."""
    readme = Path(readme)
    text = readme.read_text()
    changed = []

    def replace(match: re.Match) -> str:
        body = render(match["name"], folder or results_dir()) + "\n"
        if body != match["body"]:
            changed.append(match["name"])
        return match[1] + body + match[4]

    new = BLOCK.sub(replace, text)
    if changed and not check:
        readme.write_text(new)
    return changed


def markdown_files(root: str | os.PathLike) -> list[Path]:
    """The files whose tables are generated: ``README.md`` and every ``docs/*.md`` of the checkout
    ``root``."""
    root = Path(root)
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def update_tables(
    files: list[str | os.PathLike], folder: str | os.PathLike | None = None, check: bool = False
) -> dict[Path, list[str]]:
    """:func:`update_readme` on each of ``files``; the tables that differed, by file (files whose
    tables all match are left out)."""
    changed = {}
    for file in files:
        names = update_readme(file, folder, check)
        if names:
            changed[Path(file)] = names
    return changed
