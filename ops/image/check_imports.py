"""Import every module of the image's code (`make image-smoke`, mounted read-only, never copied in).

The image leaves out the tests, the PSP stub and the chain's test bridge (.dockerignore): this proves no module
that stays imports one of them at load time. Settings come from the container's environment. Prints one line;
exits 1 naming each module that fails.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

ROOT = Path("/app")
# Not modules: standalone scripts, data and templates; manage.py and gunicorn's config run as programs.
SKIP_DIRS = {"scripts", "staticfiles", "artifacts", "docs", "templates"}
SKIP_FILES = {"manage.py", "gunicorn.conf.py", "__main__.py"}


def module_names() -> list[str]:
    """Every importable module under /app, by dotted name."""
    names = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in SKIP_DIRS or rel.name in SKIP_FILES:
            continue
        names.append(".".join(rel.with_suffix("").parts).removesuffix(".__init__"))
    return names


def main() -> int:
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    failed = []
    names = module_names()
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # report every failure, not only the first
            failed.append(f"{name}: {exc!r}")
    for line in failed:
        print(f"import failed: {line}")
    print(f"imports: {len(names) - len(failed)} of {len(names)} modules of the image import")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
