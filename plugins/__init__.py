"""Built-in plugins, one package each. Core imports only the enabled ones."""
