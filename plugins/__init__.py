"""Built-in plugins, one package each. Core imports only the enabled ones."""

if __name__ != "fastplug.plugins":  # imported by its folder name from a checkout: a second copy
    raise ImportError(
        "fastplug's 'plugins' folder is the package 'fastplug.plugins': import fastplug.plugins (and its modules as "
        "fastplug.plugins.<module>), not 'plugins'; a project may have a 'plugins' package of its own"
    )
