"""The data managers' page: server-rendered (Jinja2), no JavaScript, every asset in here."""
