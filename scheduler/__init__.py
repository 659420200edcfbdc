"""The scheduler: pulls every form from Central on its schedule, in one process at a time.

- ``triggers``: a form's schedule (interval or crontab line, with jitter) as an APScheduler
  3 trigger;
- ``leader``: the single-leader lock (PostgreSQL advisory lock, or a file lock on SQLite);
- ``service``: the loop that leads or stands by, one job per form, and stops cleanly;
- ``wiring``: Settings to a ready service (the forms manifest, ``collector.sync.submissions``).

``collector scheduler`` (``collector/cli/run.py``) starts it.
"""
