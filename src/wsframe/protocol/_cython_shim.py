"""Stand-in for the ``cython`` module when Cython is not installed (it is a build dependency only).

frames.py asks ``cython.compiled``; run as plain Python that is False. Compiled,
Cython resolves ``cython`` itself and never imports this.
"""

compiled = False
