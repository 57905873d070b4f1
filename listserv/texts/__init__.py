"""The mails listserv writes itself, from text files per language, never from code.

``de/`` and ``en/`` hold one file per text (``Subject:`` line, blank line,
body with ``$placeholders``); ``render`` fills one (a list's ``texts_dir``
may override any file), ``compose`` makes it a ready ``EmailMessage`` in one
language with the headers every answer and notice carries.

Core: render, compose
Shell: (none)
May import: config, mail
"""
