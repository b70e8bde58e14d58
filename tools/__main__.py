"""`python -m tools COMMAND …`: operator commands (publish, sign-event, dlq, finetune, golden, review, erase, …)."""

from __future__ import annotations

import sys

from tools import alarms, backfill, capacity, dlq, erase, finetune, golden, publish, review, sign_event, taxonomy

COMMANDS = {
    "publish": publish.main,
    "sign-event": sign_event.main,
    "dlq": dlq.main,
    "finetune": finetune.main,
    "golden": golden.main,
    "alarms": alarms.main,
    "backfill": backfill.main,
    "capacity": capacity.main,
    "taxonomy": taxonomy.main,
    "review": review.main,
    "erase": erase.main,
}


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(f"usage: python -m tools {{{','.join(COMMANDS)}}} ...", file=sys.stderr)
        return 2
    return COMMANDS[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
