"""The domain the web side (``app``) and the job side (``worker``) share.

Settings, book links, statuses, records and their store, the queue's contract with
RQ, batches, exports and the counters the worker keeps. Nothing here imports Flask
or the worker's fetching and parsing, so each side loads only what it runs.
"""
