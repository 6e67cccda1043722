"""pyproject.toml names every folder of the package, so `pip install .` ships it without setuptools' warning wall."""

import tomllib

from conftest import REPO


def test_every_folder_with_an_identifier_name_is_a_listed_package():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = set()
    for package, folder in config["package-dir"].items():
        for path in [REPO / folder, *(REPO / folder).rglob("*")]:
            relative = path.relative_to(REPO / folder).parts
            if path.is_dir() and path.name != "__pycache__" and all(part.isidentifier() for part in relative):
                folders.add(".".join((package, *relative)))
    assert folders == set(config["packages"])
