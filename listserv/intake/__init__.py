"""Intake: the SMTP/LMTP server, and which list address a recipient names.

The first step of every mail. ``routing`` decides at RCPT (one of our
addresses, or a named refusal); ``server`` is the aiosmtpd handler that
commits the mail to the inbox and only then answers ``250``. Every reply
string is named once in ``codes``.

Core: codes, routing, screen
Shell: server
May import: clock, config, errors, listserv, log, mail, store
"""
