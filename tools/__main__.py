"""`python -m tools publish|sign-event|dlq|finetune|alarms|backfill|capacity|taxonomy|erase …`: operator commands."""

from __future__ import annotations

import sys

from tools import alarms, backfill, capacity, dlq, erase, finetune, publish, sign_event, taxonomy

COMMANDS = {
    "publish": publish.main,
    "sign-event": sign_event.main,
    "dlq": dlq.main,
    "finetune": finetune.main,
    "alarms": alarms.main,
    "backfill": backfill.main,
    "capacity": capacity.main,
    "taxonomy": taxonomy.main,
    "erase": erase.main,
}


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(f"usage: python -m tools {{{','.join(COMMANDS)}}} ...", file=sys.stderr)
        return 2
    return COMMANDS[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
