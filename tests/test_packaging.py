"""What the wheel carries: every file the packages read at run time is declared package data.
(.ci/wheel-check builds the wheel and the sdist, installs the wheel and runs every task.)"""

import tomllib
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_data_file_of_the_packages_is_package_data():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    declared = setuptools["package-data"]
    for package in setuptools["packages"]:
        for path in (ROOT / package).rglob("*"):
            if path.is_dir() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts:
                continue
            inside = path.relative_to(ROOT / package).as_posix()
            assert any(fnmatch(inside, pattern) for pattern in declared.get(package, ())), \
                f"{package}/{inside} is read at run time but not declared as package data"
