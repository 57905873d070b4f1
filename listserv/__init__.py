"""listserv: a mailing-list manager daemon.

Mail arrives over SMTP or LMTP, is committed to SQLite before it is
acknowledged, and is then decided by a pure core (commands, policy,
transform) and delivered by an I/O shell.
"""

__version__ = "0.1.0"
