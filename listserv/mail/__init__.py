"""Reading an inbound mail: its text and headers, and what its sender's domain publishes.

``message`` parses once and answers the few header questions we ask,
guarded against the email package's raises; ``text`` finds the text a
person wrote (the fresh part of a reply, HTML read as text). ``dmarc``
decides what a DMARC record means and ``dmarc_lookup`` finds it in DNS;
``dkim_proof`` says whether a mail is provably its From domain's, written
to us, now: a DKIM signature that covers every header we read. Imports
nothing of listserv: every step may use it.

Core: message, text, html, dmarc, mentions
Shell: dmarc_lookup, dkim_proof
May import: (none)
"""
