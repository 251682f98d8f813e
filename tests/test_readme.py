"""README's "From Python" section: the quick snippet runs as written, the training one names jobs that exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from netadapt import jobs

ROOT = Path(__file__).resolve().parents[1]


def from_python_snippets() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("**From Python**"):]
    section = section[: section.index("\n## ")]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def test_the_quick_snippet_runs(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(ROOT)  # its paths are the repository's examples
    quick, _ = from_python_snippets()
    exec(compile(quick, "README.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "4.50M params, 0.993B MAdds"  # the README's table: the paper's searched network, SSDLite
    assert printed[1] == "17 layers" and "mobilenetv2" in printed[2]


def test_the_training_snippet_calls_jobs_that_exist() -> None:
    _, training = from_python_snippets()
    called = {node.attr for node in ast.walk(ast.parse(training))
              if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "jobs"}
    assert called >= {"Data", "SearchConfig", "search", "select", "train", "evaluate", "adapt"}
    assert [name for name in sorted(called) if not hasattr(jobs, name)] == []
