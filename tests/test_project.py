"""The project's own files agree with each other."""

import json
import re
from pathlib import Path

import tomllib

from fastst.config import preset_digest
from fastst.presets import PRESETS

ROOT = Path(__file__).resolve().parent.parent
CONDA_NAMES = {"torch": "pytorch"}


def _requirements():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += extra
    return {re.split(r"[<>=!~ \[]", r, maxsplit=1)[0].lower(): r for r in reqs}


def _environment():
    text = (ROOT / "environment.yml").read_text()
    names = {}
    for line in text.splitlines():
        m = re.match(r"\s*-\s+([A-Za-z0-9_.-]+)\s*(.*)$", line)
        if m and m.group(1) not in ("pip", "-e"):
            names[m.group(1).lower()] = m.group(2).strip()
    return text, names


def test_environment_yml_holds_every_dependency_with_the_same_bounds():
    text, env = _environment()
    assert re.search(r"^\s*-\s+python=3\.11\s*$", text, re.M)
    assert re.search(r"^\s*-\s+-e \.\s*$", text, re.M), "the package itself through pip"
    for name, requirement in _requirements().items():
        conda = CONDA_NAMES.get(name, name)
        assert conda in env, f"{conda} missing from environment.yml"
        bound = requirement[len(name) :].strip()
        assert env[conda] == bound, f"{conda}: environment.yml says {env[conda]!r}, pyproject {bound!r}"


def test_environment_yml_has_what_the_notebooks_need():
    _, env = _environment()
    assert {
        "python",
        "pytorch",
        "torchvision",
        "jupyterlab",
        "matplotlib",
        "pillow",
        "nbconvert",
        "pandas",
        "tqdm",
    } <= set(env)


def test_notebooks_are_committed_without_outputs():
    import json

    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        for cell in cells:
            if cell["cell_type"] == "code":
                assert cell.get("outputs") == [] and cell.get("execution_count") is None, (
                    f"{nb.name} has outputs: run 'python -m fastst notebooks strip'"
                )


def test_strip_clears_outputs(tmp_path):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    from fastst.notebooks import strip

    nb = new_notebook(
        cells=[
            new_code_cell(
                "1 + 1",
                execution_count=3,
                outputs=[new_output("execute_result", {"text/plain": "2"}, execution_count=3)],
            )
        ]
    )
    path = tmp_path / "01_x.ipynb"
    nbformat.write(nb, path)
    assert strip([path]) == [path]
    cell = nbformat.read(path, as_version=4).cells[0]
    assert cell.outputs == [] and cell.execution_count is None and cell.source == "1 + 1"
    assert strip([path]) == []


def _pages():
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_the_readme_is_a_front_door():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200 and len(text.encode()) <= 12 * 1024
    head = "\n".join(text.splitlines()[:40])
    assert "make test" in head and "![" in head, "the set-up commands and a picture come first"


def test_links_in_the_readme_and_docs_lead_somewhere():
    for page in _pages():
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+://", target):
                continue
            path = target.split("#")[0]
            if path:
                assert (page.parent / path).exists(), f"{page.name} links to {target}, which does not exist"


def test_the_architecture_page_names_every_module_and_tool():
    text = (ROOT / "docs" / "architecture.md").read_text()
    for path in sorted((ROOT / "fastst").glob("*.py")) + sorted((ROOT / "tools").glob("*.py")):
        name = path.relative_to(ROOT).as_posix()
        assert f"`{name}`" in text, f"docs/architecture.md does not name {name}"


# The figures the README shows come from the main job's runs (notebooks 3 and 4).
MAIN_JOB_FIGURES = (
    "fig2_losses",
    "fig3_starry_night",
    "fig3_woman_with_a_parasol",
    "04_results_starry_night",
    "04_results_woman_with_a_parasol",
    "04_inference_time",
)


def test_committed_figures_name_the_runs_the_main_job_trains_today():
    """A figure drawn from the main job records the preset's digest; once the preset's settings change,
    the code no longer produces that digest and the figure must be drawn again."""
    for name in MAIN_JOB_FIGURES:
        sidecar = json.loads((ROOT / "figures" / f"{name}.json").read_text())
        assert sidecar.get("preset_digest") == preset_digest(sidecar["preset"]), name
        assert not any("/" in str(v) for v in sidecar.get("runs", {}).values()), name  # no machine's paths


def test_the_preset_digest_follows_the_preset(monkeypatch):
    before = preset_digest("cpu")
    monkeypatch.setitem(PRESETS, "cpu", {**PRESETS["cpu"], "lr": PRESETS["cpu"]["lr"] * 2})
    assert preset_digest("cpu") != before
    assert preset_digest("smoke") != before
