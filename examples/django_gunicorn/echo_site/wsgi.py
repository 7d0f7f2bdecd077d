"""The WSGI application gunicorn serves: ``gunicorn -k gthread --threads 16 echo_site.wsgi``."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "echo_site.settings")
application = get_wsgi_application()
