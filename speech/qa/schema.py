"""``python -m speech.qa.schema [FILE]``: write the rule packs' JSON Schema (rules.schema.json)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from speech.qa.rules import SCHEMA_FILE, json_schema


def main(argv: list[str] | None = None) -> int:
    """Write the schema to FILE, or to ``speech/qa/rules.schema.json``."""
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0]) if args else SCHEMA_FILE
    target.write_text(json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
