"""Result files name the code that produced them: the commit, and whether and how the tree differed."""

import hashlib
import json
import shlex
import subprocess
from pathlib import Path

import pytest

from fastst.results import machine
from fastst.runtime import git_state

ROOT = Path(__file__).resolve().parent.parent


def _git(repo, *args) -> str:
    """Run git in ``repo`` as a person with no git configuration of their own would."""
    identity = ["-c", "user.name=fastst", "-c", "user.email=fastst@example.com", "-c", "commit.gpgsign=false"]
    return subprocess.run(
        ["git", *identity, *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


def test_the_commit_is_recorded_with_whether_the_tree_was_dirty_and_a_digest_of_the_diff(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # git looks no further up than tmp_path
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "code.py").write_text("x = 1\n")
    _git(repo, "add", "code.py")
    _git(repo, "commit", "-q", "-m", "one")
    head = _git(repo, "rev-parse", "HEAD").strip()
    (repo / "notes.txt").write_text("an untracked file leaves the tree clean\n")
    assert git_state(repo) == {"git_commit": head, "git_dirty": False, "git_diff_sha256": None}
    assert git_state(repo / "..") == {"git_commit": None, "git_dirty": None, "git_diff_sha256": None}

    (repo / "code.py").write_text("x = 2\n")
    first = git_state(repo)
    diff = subprocess.run(["git", "diff", "HEAD"], cwd=repo, check=True, capture_output=True).stdout
    assert first == {
        "git_commit": head,
        "git_dirty": True,
        "git_diff_sha256": hashlib.sha256(diff).hexdigest()[:16],
    }
    (repo / "code.py").write_text("x = 3\n")
    second = git_state(repo)
    assert second["git_dirty"] and second["git_diff_sha256"] != first["git_diff_sha256"]
    _git(repo, "add", "code.py")  # staged or not, a change against the commit is the same change
    assert git_state(repo) == second
    (repo / "code.py").write_text("x = 1\n")
    _git(repo, "add", "code.py")
    assert git_state(repo)["git_dirty"] is False

    (repo / "study.py").write_text("print(1)\n")  # new code git does not track yet: not the commit's
    untracked = git_state(repo)
    assert untracked["git_dirty"] and untracked["git_diff_sha256"] is not None
    (repo / "study.py").write_text("print(2)\n")
    assert git_state(repo)["git_diff_sha256"] != untracked["git_diff_sha256"]
    _git(repo, "add", "study.py")
    _git(repo, "commit", "-q", "-m", "two")
    assert git_state(repo)["git_dirty"] is False

    monkeypatch.setenv("PATH", str(tmp_path / "no-git-here"))
    assert git_state(repo) == {"git_commit": None, "git_dirty": None, "git_diff_sha256": None}


def test_figures_and_results_a_run_rewrites_leave_the_code_as_committed(tmp_path, monkeypatch):
    """`make` redraws committed figures and studies rewrite committed results: those are what the code
    made, not the code, so a result written after them still names the commit as it is."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    repo = tmp_path / "repo"
    for name in ("figures", "results", "fastst"):
        (repo / name).mkdir(parents=True)
    (repo / "figures" / "fig2.json").write_text("{}\n")
    (repo / "results" / "study.json").write_text("{}\n")
    (repo / "fastst" / "code.py").write_text("x = 1\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "one")
    (repo / "figures" / "fig2.json").write_text('{"redrawn": true}\n')
    (repo / "results" / "study.json").write_text('{"rerun": true}\n')
    assert git_state(repo / "fastst")["git_dirty"] is False
    (repo / "fastst" / "code.py").write_text("x = 2\n")
    changed = git_state(repo / "fastst")
    code_diff = subprocess.run(
        ["git", "diff", "HEAD", "--", "fastst"], cwd=repo, check=True, capture_output=True
    ).stdout
    assert changed["git_dirty"] is True
    assert changed["git_diff_sha256"] == hashlib.sha256(code_diff).hexdigest()[:16]
    (repo / "fastst" / "code.py").write_text("x = 1\n")
    (repo / "tools").mkdir()
    (repo / "tools" / "study.py").write_text("print(1)\n")  # a new study beside the package, not in it
    assert git_state(repo / "fastst")["git_dirty"] is True


def test_every_machine_record_carries_the_code_it_came_from():
    """The machine record every result file holds names the package's own checkout and its state."""
    recorded = {k: v for k, v in machine(measure=False).items() if k.startswith("git_")}
    now = git_state()
    assert set(recorded) == set(now) and recorded["git_commit"] == now["git_commit"]


def _in_checkout(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)


def test_every_committed_result_names_a_commit_holding_its_script_or_says_it_was_dirty():
    """A result's recorded commit must contain the script its command names, unless the result says the
    tree differed from that commit (then the commit alone does not pin the code, and the record says so)."""
    if _in_checkout("rev-parse", "--is-shallow-repository").stdout.strip() != "false":
        pytest.skip("needs the repository's history")
    for path in sorted((ROOT / "results").glob("*.json")):
        record = json.loads(path.read_text())
        code = record.get("machine") or {}
        commit = code.get("git_commit") or record.get("git_commit")
        script = (record.get("command") or "").split()[:1]
        if not commit or not script or code.get("git_dirty") is True:
            continue
        where = "fastst/__main__.py" if script[0] == "__main__.py" else f"tools/{script[0]}"
        held = _in_checkout("cat-file", "-e", f"{commit}:{where}").returncode == 0
        assert held, f"{path.name}: commit {commit[:8]} holds no {where}"


def test_a_recorded_command_is_one_a_shell_splits_back_into_its_arguments(monkeypatch):
    from fastst.host import command_line

    argv = [
        "/somewhere/tools/any_style.py",
        "--also",
        "fastst one-pass on the base=anystyle_base",
        "--refine",
        "30",
    ]
    monkeypatch.setattr("sys.argv", argv)
    assert shlex.split(command_line()) == ["any_style.py", *argv[1:]]
    assert command_line().split(" ")[0] == "any_style.py"  # how a table finds the study that wrote a result
