"""``fastplug new`` and ``fastplug new-plugin``: projects and plugins from templates."""
