"""The exception tree. Exceptions mean faults; outcomes are values.

    ListservError
    ├── ConfigError      the TOML file is wrong: one line, exit status 2
    │   └── dkim.DkimKeyError   the DKIM key is missing, unreadable or too weak
    └── StoreError       the database cannot take the write (full, locked,
                         read-only): intake answers 451, workers retry later

Everything a mail can do wrong (bad syntax, unknown command, expired
token) is an outcome, not an exception: the core returns a value that the
shell turns into an SMTP code or a reply mail.
"""


class ListservError(Exception):
    """Base of listserv's own faults."""


class ConfigError(ListservError):
    """The configuration is wrong; the message is one line for the operator."""


class StoreError(ListservError):
    """The database refused or failed a write; nothing of it was committed."""
