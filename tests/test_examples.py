"""Every script in examples/ runs, with tiny settings."""

import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
NEEDS = {"meuse.py": "skgstat"}  # optional dependencies of some examples: skipped without them


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(path, tmp_path, monkeypatch):
    if path.name in NEEDS:
        pytest.importorskip(NEEDS[path.name])
    monkeypatch.setenv("PINNPROB_EXAMPLE_SMALL", "1")
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(path), run_name="__main__")


def _private_uses(path: Path) -> list[str]:
    """Private names of pinnprob that a script imports or reaches by attribute (``_x``, not ``__x__``)."""
    import ast

    def private(name: str) -> bool:
        return name.startswith("_") and not name.endswith("__")

    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pinnprob"):
            found += [f"{node.module}.{a.name}" for a in node.names
                      if private(a.name) or any(private(p) for p in node.module.split("."))]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names
                      if a.name.startswith("pinnprob") and any(private(p) for p in a.name.split("."))]
        elif isinstance(node, ast.Attribute) and private(node.attr):
            root = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id == "pinnprob":
                found.append(f"pinnprob...{node.attr}")
    return found


def test_private_uses_are_found(tmp_path):
    script = tmp_path / "s.py"
    script.write_text("import pinnprob\nfrom pinnprob.inference.fit import _obs_scale, fit\n"
                      "from pinnprob._validation import check\nx = pinnprob.inference._private\n"
                      "import pinnprob.training as _t\nv = pinnprob.__version__\n")
    assert _private_uses(script) == ["pinnprob.inference.fit._obs_scale", "pinnprob._validation.check",
                                     "pinnprob..._private"]


@pytest.mark.parametrize("path", EXAMPLES + sorted((ROOT / "benchmarks").glob("*.py")),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_scripts_use_only_public_names(path):
    """Examples and benchmarks use pinnprob as a user would: no private module, function or attribute."""
    assert _private_uses(path) == []
