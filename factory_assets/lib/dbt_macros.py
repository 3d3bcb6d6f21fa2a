"""SQL written once, as a dbt macro, and rendered outside dbt too.

A macro whose arguments are relation names (no ``ref``, ``source`` or other dbt context inside)
is plain Jinja: dbt renders it in a model, and Python renders the same file for its own relations,
so the logic cannot drift apart between a mart and a feature set."""

from __future__ import annotations

from pathlib import Path

from factory_assets.settings import DBT_PROJECT_DIR


def render_macro(name: str, *args: str, project_dir: Path = DBT_PROJECT_DIR) -> str:
    """The SQL of macro ``name`` (file ``<project>/macros/<name>.sql``) called with ``args``."""
    import jinja2

    path = project_dir / "macros" / f"{name}.sql"
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    try:
        macro = getattr(env.from_string(path.read_text()).module, name)
        return str(macro(*args))
    except (OSError, AttributeError, jinja2.TemplateError) as exc:
        raise ValueError(f"{path}: cannot render macro {name!r} ({exc}); it must define "
                         f"{{% macro {name}(...) %}} using only its arguments") from exc
