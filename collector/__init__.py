"""collector: XLSForms to ODK Central, submissions from Central to typed tables, an API on top."""

__version__ = "0.1.0"
