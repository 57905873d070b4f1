"""Delivery: the list copy, its DKIM signature, and handing copies to the wire.

Deciding: ``transform`` builds the member copy (List-* headers, prefix,
footer, DMARC From rewrite); ``plan`` groups due recipients into
transactions, computes retry times and personal copies; ``outcomes`` are
the per-recipient results. Doing: ``sender`` claims due deliveries, signs
(``signing``; personalised copies in the signing processes of ``personal``,
each given a post's template once: ``template_signing``) and hands them to
a ``transports.Transport`` (``maildir`` or ``smtp``), then records each
outcome (``record``: many transactions' outcomes in one commit).

Core: transform, footer, plan, outcomes
Shell: signing, template_signing, personal, sender, record, transports, maildir, smtp, pipeline
May import: bounces, clock, commands, config, errors, log, outbox, store, texts
"""
