"""``tinyllm explore``: a local web page that shows inside a model.

- ``api``: the numbers (pure functions: a model and a request in, a JSON-able dict out);
- ``server``: the web app (Starlette) serving ``static/`` (the page) and ``api`` as JSON;
- ``command``: the ``tinyllm explore`` command (``add_arguments``, ``run``).

``api`` needs only tinyllm; ``server`` and ``command`` need ``pip install "tinyllm[explore]"``.
"""
