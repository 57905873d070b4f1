"""Every SMTP reply listserv gives, named once (RFC 5321 + RFC 3463 codes).

Tests compare against these names, so a wording change is made in one
place, and an operator grepping a log for ``5.7.1`` finds its meaning here.
"""

OK = "250 2.0.0 OK: queued"
OK_RCPT = "250 2.1.5 OK"
OK_SENDER = "250 2.1.0 OK"

# RCPT: refusals (DESIGN §4)
UNKNOWN_USER = "550 5.1.1 No such list or list address here"
RELAY_DENIED = "550 5.7.1 Relaying denied: this server only takes mail for its lists"
BAD_RECIPIENT_SYNTAX = "553 5.1.3 Recipient address not accepted"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients in one transaction"
# One -confirm+TOKEN address per transaction: each would store the whole message again.
# 452 makes a real MTA send the others in transactions of their own (RFC 5321 3.3).
ONE_CONFIRM_PER_MESSAGE = "452 4.5.3 One confirmation address per message, send the others apart"

# DATA
TOO_BIG = "552 5.3.4 Message too big for this list"
LINE_TOO_LONG = "500 5.5.6 Line too long (RFC 5321 4.5.3.1.6)"
TOO_COMPLEX = "554 5.6.0 Message structure too complex for this list"   # intake.screen
STORE_FAILED = "451 4.3.0 Temporary failure storing the message, please try again later"

# Session
TOO_MANY_CONNECTIONS = "421 4.7.0 Too many connections, try again later"
TOO_MANY_FROM_PEER = "421 4.7.0 Too many connections from your address, try again later"
SHUTTING_DOWN = "421 4.3.2 Service shutting down, try again later"

# aiosmtpd's own wording for the same conditions, without enhanced codes:
# intake rewrites these to the lines above (see intake.ListservSMTP.push).
AIOSMTPD_REWRITES = {
    "552 Error: Too much mail data": TOO_BIG,
    "552 Error: message size exceeds fixed maximum message size": TOO_BIG,
    "500 Line too long (see RFC5321 4.5.3.1.6)": LINE_TOO_LONG,
}
