"""``tinyllm explore``: a local web page that shows inside a model.

- ``api``: the numbers (pure functions: a model and a request in, a JSON-able dict out);
- ``server``: the web app (Starlette) serving ``static/`` (the page) and ``api`` as JSON.

The ``tinyllm explore`` command that serves it is ``tinyllm.cli.explore``. ``api`` needs only
tinyllm; ``server`` needs ``pip install "tinyllm[explore]"``.
"""
