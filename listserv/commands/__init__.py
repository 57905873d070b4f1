"""Commands: what a person wrote, read as commands or a decision; and our tokens.

``parse`` reads a mail's fresh text (never a quote, a signature, or more
than a few lines) as commands in German or English, per context: a post,
a request, a reply to one of our notices. A new reply word goes here.
``tokens`` issues and redeems the secret, single-use tokens that every
confirmation and moderator decision needs.

Core: parse
Shell: tokens
May import: clock, mail
"""
