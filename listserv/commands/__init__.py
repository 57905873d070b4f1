"""Commands: what a person wrote, read as commands or a decision; and our tokens.

``parse`` reads a mail's fresh text (never a quote, a signature, or more
than a few lines) as commands in German or English, per context: a post,
a request. ``reader`` reads a reply to one of our notices as a decision (a person about
her own request: anything but a no; a moderator: an explicit word only),
``verdict`` says what that decision does for the notice answered, and
``requests`` tells a join/leave/colleague request written in free text to the
list address from a post. A new reply word goes into ``reader``. ``tokens``
issues and redeems the secret, single-use tokens that every confirmation and
moderator decision needs.

Core: parse, reader, verdict, requests
Shell: tokens
May import: clock, mail
"""
