"""Membership: joining and leaving by mail, the member rows and the consent log.

``actions`` is what a membership command does (subscribe, confirm, approve,
unsubscribe, invite, remove, pause and resume, ``who``, the moderator's
acknowledgement), each in one transaction with its
consent record and its answer. ``members`` reads and writes the member
rows and the consent log (export and erasure for the DSGVO).
``memberfile`` reads a member list exported from Outlook or Excel.

Core: memberfile
Shell: members, actions, erasure, logins
May import: archive, clock, commands, config, inbox, log, mail, outbox, store, texts
"""
