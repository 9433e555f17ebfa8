"""What the wheel carries: every file the packages read at run time is declared package data.
(.ci/wheel-check builds the wheel and the sdist, installs the wheel and runs every task.)"""

import tomllib
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_data_file_of_the_packages_is_package_data():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    declared = setuptools["package-data"]
    folders = {package: ROOT / package.replace(".", "/") for package in setuptools["packages"]}
    for package, folder in folders.items():
        assert folder.is_dir(), f"{package} is listed in pyproject.toml but has no folder"
        for path in folder.rglob("*"):
            if path.is_dir() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts:
                continue
            # a file belongs to the innermost listed package that holds it
            owner = max((p for p, f in folders.items() if path.is_relative_to(f)),
                        key=lambda p: len(p))
            if owner != package:
                continue
            inside = path.relative_to(folder).as_posix()
            assert any(fnmatch(inside, pattern) for pattern in declared.get(package, ())), \
                f"{package}: {inside} is read at run time but not declared as package data"


def test_every_subpackage_is_listed():
    """A folder of Python modules under lstm_xp/ that pyproject.toml does not list would be
    left out of the wheel."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    for init in (ROOT / "lstm_xp").rglob("__init__.py"):
        package = init.parent.relative_to(ROOT).as_posix().replace("/", ".")
        assert package in listed, f"{package} is not in pyproject.toml's packages"


def test_imports_flow_one_way():
    """command -> job -> library -> backends: the library never imports the job (but for
    lstm_xp/train.py, which only re-exports it, and __main__.py, the command), and
    backends/ never imports lstm_xp."""
    import re
    job = re.compile(r"^\s*(from\s+(\.job|lstm_xp\.job)\b|import\s+lstm_xp\.job\b)", re.M)
    for path in (ROOT / "lstm_xp").glob("*.py"):
        if path.name not in ("train.py", "__main__.py"):      # re-exports; the command
            assert not job.search(path.read_text()), f"{path.name} imports the job"
    library = re.compile(r"^\s*(from\s+lstm_xp\b|import\s+lstm_xp\b)", re.M)
    for path in (ROOT / "backends").glob("*.py"):
        assert not library.search(path.read_text()), f"backends/{path.name} imports lstm_xp"
