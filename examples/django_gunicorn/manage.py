#!/usr/bin/env python
"""Django's command line for the example (``python manage.py check``).

``runserver`` cannot serve the WebSocket views: Django's development server
(wsgiref) gives the application no socket. Run gunicorn's gthread worker:
``gunicorn -k gthread --threads 16 -b 127.0.0.1:8000 echo_site.wsgi``.
"""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "echo_site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
