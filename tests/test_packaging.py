"""The three places that pin dependencies must agree: pyproject.toml (what is needed),
constraints.txt (the lock: exact versions) and environment.yml (the conda route)."""

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pyproject_requirements() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra]
    return {normalise(Requirement(line).name): Requirement(line) for line in lines}


def lock_versions() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not pinned with =="
            pins[normalise(name)] = version
    return pins


def conda_pip_pins() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    pins = {}
    for line in pip_section:
        if line.startswith("-"):
            continue
        requirement = Requirement(line)  # e.g. ray[tune]==2.60.0: the package is ray
        pins[normalise(requirement.name)] = str(requirement.specifier).removeprefix("==")
    return pins


def test_every_direct_dependency_is_locked_within_its_range():
    lock = lock_versions()
    for name, requirement in pyproject_requirements().items():
        assert name in lock, f"{name} is in pyproject.toml but not in constraints.txt (run `make lock`)"
        assert requirement.specifier.contains(lock[name], prereleases=True), (
            f"constraints.txt pins {name}=={lock[name]}, outside pyproject's {requirement.specifier}")


def test_environment_yml_matches_pyproject_and_lock():
    conda, lock, direct = conda_pip_pins(), lock_versions(), pyproject_requirements()
    assert set(conda) == set(direct), (
        f"environment.yml and pyproject.toml list different packages: "
        f"only in environment.yml {sorted(set(conda) - set(direct))}, "
        f"only in pyproject.toml {sorted(set(direct) - set(conda))}")
    drifted = {n: (conda[n], lock[n]) for n in conda if conda[n] != lock[n]}
    assert not drifted, f"environment.yml pins differ from constraints.txt (yml, lock): {drifted}"


def test_environment_yml_installs_the_project_with_the_lock():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert "-e ." in pip_section and any(line.startswith("-c constraints.txt") for line in pip_section)
    assert "python=3.11" in env["dependencies"]


def test_torch_is_pinned_to_the_reproducible_build():
    assert str(pyproject_requirements()["torch"].specifier) == "==2.13.0"
    assert lock_versions()["torch"] == "2.13.0"
