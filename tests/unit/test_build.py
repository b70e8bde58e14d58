"""`sam build` without Docker: the layer carries python3.13 arm64 binaries, the package and its data.

One real `sam build` (the repo Makefile's targets, as `make build` runs them) into a temporary
build dir; every test then inspects its artifacts. pip fetches manylinux aarch64 / cp313 wheels
from the package index, so the build tests skip when that index is unreachable. Both the layer
and the dev venv install from constraints.txt (`make lock`): the layer must hold the versions
the tests ran with.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path
from urllib.parse import urlparse

import pytest
from cfnlint.decode import cfn_yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.paths import REPO

SAM = REPO / ".tools" / "sam" / "bin" / "sam"
PACKAGE = REPO / "shared" / "categorizer"
CONSTRAINTS = REPO / "constraints.txt"
# The project itself, installed editable: not a pin.
PROJECT = "article-categorizer"
ELF_MAGIC = b"\x7fELF"
EM_AARCH64 = 183  # ELF e_machine of arm64
# The unzipped size limit of a function plus all its layers.
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024

pytestmark = pytest.mark.build


def _index_reachable() -> bool:
    index = urlparse(os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple"))
    try:
        with socket.create_connection((index.hostname or "pypi.org", index.port or 443), timeout=5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if not SAM.exists():
        pytest.skip("SAM CLI not installed: run `make install` (`make test` does)")
    if not _index_reachable():
        pytest.skip("package index unreachable: the layer build downloads manylinux aarch64 wheels")
    out = tmp_path_factory.mktemp("sam-build")
    env = os.environ | {"SAM_CLI_TELEMETRY": "0"}
    result = subprocess.run(
        [str(SAM), "build", "--no-cached", "--build-dir", str(out), "--template", "template.yaml"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    yield out


@pytest.fixture(scope="module")
def layer(build_dir: Path) -> Path:
    return build_dir / "CategorizerLayer" / "python"


def _shared_objects(root: Path) -> list[Path]:
    return [path for path in root.rglob("*.so*") if path.is_file()]


def _pins() -> dict[str, str]:
    """constraints.txt as {canonical name: version}; every line is `name==version`."""
    pins: dict[str, str] = {}
    for line in CONSTRAINTS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            requirement = Requirement(line)
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", line
            pins[canonicalize_name(requirement.name)] = specifier.version
    return pins


def _versions(distributions: Iterable[metadata.Distribution]) -> dict[str, str]:
    return {canonicalize_name(d.metadata["Name"]): d.version for d in distributions}


def test_constraints_pin_every_package_of_the_dev_venv_at_its_installed_version() -> None:
    # GIVEN the venv the tests run in (built by `make install` with -c constraints.txt)
    installed = _versions(metadata.distributions())
    installed.pop(PROJECT)
    # pip's own tooling is never pinned (`pip freeze` leaves it out)
    installed.pop("pip", None)
    installed.pop("setuptools", None)
    # THEN constraints.txt pins exactly those packages at those versions: a dependency added
    # to pyproject.toml without `make lock` shows up here
    assert installed == _pins()


def test_layer_holds_the_pinned_versions_the_tests_ran_with(layer: Path) -> None:
    # GIVEN every distribution pip installed into the layer (botocore removed: the runtime's)
    built = _versions(metadata.distributions(path=[str(layer)]))
    assert "pydantic" in built and "openai" in built
    pins = _pins()
    for name, version in sorted(built.items()):
        # THEN constraints.txt pins it at that version, and the dev venv the tests ran in has it
        assert pins.get(name) == version, f"{name} {version} in the layer, pinned {pins.get(name)}"
        assert metadata.version(name) == version, f"{name} {version} in the layer, tested {metadata.version(name)}"


def test_layer_carries_the_categorizer_package_without_bytecode(layer: Path) -> None:
    # GIVEN the source package  THEN every module and taxonomy is in the layer's python/ dir
    for source in [*PACKAGE.rglob("*.py"), *PACKAGE.glob("taxonomies/*.json")]:
        if "__pycache__" not in source.parts:
            built = layer / "categorizer" / source.relative_to(PACKAGE)
            assert built.is_file() and built.read_bytes() == source.read_bytes(), built
    assert list(PACKAGE.glob("taxonomies/*.json")), "no taxonomy to ship"
    # AND no host-built bytecode (it would be for Python 3.11, not 3.13)
    assert not list(layer.rglob("*.pyc"))


def test_layer_bundled_tiktoken_file_loads_o200k_base_without_download(layer: Path) -> None:
    # GIVEN only the layer's bundled cache dir (tokens.BUNDLED_CACHE_DIR) and downloads forbidden
    bundled = layer / "categorizer" / "data" / "tiktoken"
    check = (
        "import tiktoken, tiktoken.load as load\n"
        "def refuse(url):\n    raise RuntimeError('download attempted: ' + url)\n"
        "load.read_file = refuse\n"
        "print(tiktoken.get_encoding('o200k_base').encode('42'))\n"
    )
    env = os.environ | {"TIKTOKEN_CACHE_DIR": str(bundled)}
    # WHEN tiktoken loads o200k_base (it verifies the file's sha256, re-downloading on mismatch)
    result = subprocess.run(
        [sys.executable, "-c", check], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    # THEN it loads from the bundled file: label "42" is one token
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.strip().strip("[]").split(",")) == 1


@pytest.mark.parametrize("package", ["pydantic_core", "tiktoken", "jiter", "lxml"])
def test_layer_compiled_dependencies_are_built_for_cpython313_on_aarch64(layer: Path, package: str) -> None:
    # GIVEN a dependency with compiled extensions
    extensions = list((layer / package).rglob("*.so"))
    # THEN they are CPython 3.13 extensions for Linux arm64
    assert extensions, f"{package} has no compiled extension in the layer"
    for extension in extensions:
        assert "cpython-313-aarch64-linux-gnu" in extension.name, extension


def test_layer_has_no_binary_for_another_architecture_or_python(layer: Path) -> None:
    shared_objects = _shared_objects(layer)
    assert shared_objects
    for path in shared_objects:
        # GIVEN every shared object (extensions and vendored libraries such as OpenBLAS)
        header = path.read_bytes()[:20]
        # THEN it is a 64-bit little-endian ELF for aarch64, not x86_64
        assert header[:4] == ELF_MAGIC and header[4] == 2 and header[5] == 1, path
        assert int.from_bytes(header[18:20], "little") == EM_AARCH64, path
        assert "x86_64" not in path.name and "cpython-311" not in path.name, path


def test_layer_wheels_are_pure_or_manylinux_aarch64_cp313(layer: Path) -> None:
    # GIVEN the WHEEL metadata pip kept for every installed distribution
    tags = [
        line.removeprefix("Tag:").strip()
        for wheel in layer.glob("*.dist-info/WHEEL")
        for line in wheel.read_text().splitlines()
        if line.startswith("Tag:")
    ]
    assert tags
    for tag in tags:
        interpreter, abi, platform = tag.split("-")
        # THEN each is pure Python, or a CPython 3.13 (or stable-ABI) manylinux aarch64 build
        if platform != "any":
            assert platform.startswith("manylinux") and platform.endswith("aarch64"), tag
            assert abi in {"cp313", "abi3"} and interpreter.startswith("cp3"), tag


def test_layer_leaves_boto3_and_botocore_to_the_runtime(layer: Path) -> None:
    # The python3.13 runtime ships them; a layer copy would shadow the runtime's matching pair.
    assert not (layer / "botocore").exists()
    assert not (layer / "boto3").exists()


def test_layer_fits_the_lambda_unzipped_size_limit(build_dir: Path) -> None:
    size = sum(path.stat().st_size for path in build_dir.rglob("*") if path.is_file())
    # Leave room for the function code and a later dependency.
    assert size < 0.6 * LAMBDA_UNZIPPED_LIMIT, f"{size / 2**20:.0f} MiB"


def test_every_function_artifact_holds_its_handler_module(build_dir: Path) -> None:
    # GIVEN the template sam build wrote, whose CodeUris point into the build dir
    built = cfn_yaml.load(str(build_dir / "template.yaml"))
    functions = {
        name: resource["Properties"]
        for name, resource in built["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }
    assert functions
    for name, properties in functions.items():
        handler = properties["Handler"]
        code = build_dir / properties["CodeUri"]
        # THEN the handler's module sits at the zip root, and no shared package is copied in
        assert (code / f"{handler.rsplit('.', 1)[0]}.py").is_file(), name
        assert not (code / "categorizer").exists(), name
