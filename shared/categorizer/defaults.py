"""Defaults shared by the functions, the offline stack and the benchmarks."""

# Input token budget per article (title + body, o200k_base tokens), chosen from the budget
# study (`make bench-budget`, README "Input token budget").
DEFAULT_INPUT_TOKEN_BUDGET = 512
DEFAULT_TOP_K = 5
BASE_MODEL = "gpt-4o-mini-2024-07-18"
