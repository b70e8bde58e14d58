"""`python -m local …` run directly finds o200k_base offline, as `make` does (TIKTOKEN_CACHE_DIR)."""

from __future__ import annotations

from pathlib import Path

from local.tiktoken_cache import VARIABLE, ensure_tiktoken_cache_dir, shared_cache, tools_cache

O200K_FILE = "fb374d419588a4632f3f557e76b4b70aebbca790"  # tiktoken's cache key for o200k_base


def _repo(tmp_path: Path) -> Path:
    """An empty checkout at tmp_path/repo, beside which ../shared/data may hold the cache."""
    repo = tmp_path / "repo"
    repo.mkdir()
    return repo


def test_the_shared_cache_beside_the_repo_seeds_the_tools_cache(tmp_path: Path) -> None:
    # GIVEN ../shared/data/tiktoken-cache holding the file, and no .tools/tiktoken-cache yet
    repo = _repo(tmp_path)
    shared_cache(repo).mkdir(parents=True)
    (shared_cache(repo) / O200K_FILE).write_bytes(b"o200k")
    environ: dict[str, str] = {}
    # WHEN the stack sets up the tokenizer cache
    value = ensure_tiktoken_cache_dir(repo, environ)
    # THEN .tools/tiktoken-cache holds a copy and TIKTOKEN_CACHE_DIR points there
    assert value == environ[VARIABLE] == str(tools_cache(repo))
    assert (tools_cache(repo) / O200K_FILE).read_bytes() == b"o200k"


def test_the_tools_cache_is_used_and_its_files_are_kept(tmp_path: Path) -> None:
    # GIVEN .tools/tiktoken-cache with the file, and a different one beside the repo
    repo = _repo(tmp_path)
    tools_cache(repo).mkdir(parents=True)
    (tools_cache(repo) / O200K_FILE).write_bytes(b"kept")
    shared_cache(repo).mkdir(parents=True)
    (shared_cache(repo) / O200K_FILE).write_bytes(b"other")
    environ: dict[str, str] = {}
    # WHEN the stack sets up the tokenizer cache THEN it uses .tools/tiktoken-cache as it is
    assert ensure_tiktoken_cache_dir(repo, environ) == str(tools_cache(repo))
    assert (tools_cache(repo) / O200K_FILE).read_bytes() == b"kept"


def test_a_variable_already_set_is_left_alone(tmp_path: Path) -> None:
    # GIVEN TIKTOKEN_CACHE_DIR set by the caller (the Makefile, a test), and caches on disk
    repo = _repo(tmp_path)
    shared_cache(repo).mkdir(parents=True)
    environ = {VARIABLE: "/elsewhere"}
    # WHEN the stack sets up the tokenizer cache THEN the caller's value stands, nothing is copied
    assert ensure_tiktoken_cache_dir(repo, environ) == "/elsewhere"
    assert environ == {VARIABLE: "/elsewhere"}
    assert not tools_cache(repo).exists()


def test_without_any_cache_tiktoken_is_left_to_download(tmp_path: Path) -> None:
    # GIVEN neither cache WHEN the stack sets up the tokenizer cache
    environ: dict[str, str] = {}
    # THEN the variable stays unset (tiktoken's own cache and download, on a machine with internet)
    assert ensure_tiktoken_cache_dir(_repo(tmp_path), environ) is None
    assert environ == {}
