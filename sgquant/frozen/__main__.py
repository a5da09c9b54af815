"""``python -m sgquant.frozen NAME VERSION``: write the current settings of method NAME as
its frozen version VERSION (a new file; an existing one is never overwritten)."""
from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path

from . import frozen_file_name, method_settings


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m sgquant.frozen NAME VERSION", file=sys.stderr)
        return 2
    name, version = argv
    path = Path(__file__).with_name(frozen_file_name(name, version))
    if path.exists():
        print(f"{path} exists: a frozen version is never rewritten; choose a new version",
              file=sys.stderr)
        return 1
    path.write_text(json.dumps({"method": name, "version": version,
                                "frozen_on": date.today().isoformat(),
                                "settings": method_settings(name)}, indent=1) + "\n")
    print(f"wrote {path}; add {version!r} to FROZEN[{name!r}] in sgquant/frozen/__init__.py")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
