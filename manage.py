#!/usr/bin/env python
"""fastplug's command line: ``python manage.py --help``."""

from fastplug.core.cli import main

if __name__ == "__main__":
    main()
