"""Defaults shared by the functions, the offline stack and the benchmarks."""

# Input token budget per article (title + body, o200k_base tokens), chosen from the budget
# study (`make bench-budget`, docs/capacity.md "Input token budget"): the cheapest budget
# within one point of the best top-1 (livedoor: 0.962 at 1024, 0.935 at 512, 0.967 uncut).
DEFAULT_INPUT_TOKEN_BUDGET = 1024
DEFAULT_TOP_K = 5
BASE_MODEL = "gpt-4o-mini-2024-07-18"
