"""Copy a template tree: ``string.Template`` for file contents, ``__name__`` in file names."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from string import Template

TEMPLATES = Path(__file__).with_name("templates")
SUFFIX = ".tmpl"


def render_tree(template: str, destination: Path, context: Mapping[str, str]) -> list[Path]:
    """Write ``templates/<template>/**`` under ``destination``; return the files written.

    Every file ends in ``.tmpl`` (dropped); ``__name__`` in a path becomes ``context["name"]``;
    ``$key`` in the text becomes ``context[key]`` (``$$`` is a dollar sign). Refuses to overwrite.
    """
    root = TEMPLATES / template
    written: list[Path] = []
    for source in sorted(p for p in root.rglob("*") if p.is_file() and p.name.endswith(SUFFIX)):
        relative = source.relative_to(root).as_posix().removesuffix(SUFFIX).replace("__name__", context["name"])
        target = destination / relative
        if target.exists():
            raise FileExistsError(f"{target} already exists")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(Template(source.read_text(encoding="utf-8")).substitute(context), encoding="utf-8")
        if target.name == "manage.py":
            target.chmod(0o755)
        written.append(target)
    return written
