"""The members' archive: every published post kept, searchable (FTS5), private to members.

``extract`` reads what the archive keeps of a mail (fields, text, attachments)
and builds the anonymised copy after an erasure; ``query`` turns a person's
words into a safe, bounded FTS5 query and clamps paging. ``records`` writes
(a post archived in the publishing transaction, expiry after ``archive_days``,
erasure, the DSGVO export); ``browse`` is the read API that the mail commands
(``roles.archive_mail``) and the web pages call; ``mbox`` seeds the archive
from a mailbox (``listserv archive import``).

Core: extract, query
Shell: records, browse, mbox
May import: clock, config, errors, log, mail, store
"""
