"""The fast paths, in one place: what the service does below its frameworks for speed.

Each module starts with the measurement that justifies it, in one line, and names the versions
of the frameworks it leans on (``LEANS_ON``) that it was measured and tested with;
tests/test_fast_paths.py fails once an installed version leaves that range.

* ``routes``: the agent check and the seat writes answered ahead of FastAPI's router, by the
  same functions as their FastAPI routes.
* ``http``: uvicorn's httptools protocol, bounded like h11.
* ``driver``: one-row reads straight on asyncpg, under SQLAlchemy's pool.
"""
