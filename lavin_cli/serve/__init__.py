"""`lavin serve`: one loaded model answering over HTTP.

    service.py   the jobs: a bounded queue, one worker on the device, batching across clients
    contexts.py  where a request's context comes from (a task, an allowed folder, uploaded pairs)
    app.py       the ASGI app (FastAPI): routes, limits, tokens, errors as HTTP statuses
    metrics.py   Prometheus metrics
    client.py    `lavin run --server` and `lavin video --server`: the same runs, computed remotely
    page/        the page at /: pick a task or drop pairs, drop a query, see the prediction

The server side needs the `serve` extra (`pip install 'lavin-cli[serve]'`); the client is the
standard library only.
"""
