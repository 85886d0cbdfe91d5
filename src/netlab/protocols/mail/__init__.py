"""
Mail for the lab: C{[smtp]} takes messages in (ESMTP, STARTTLS or implicit
TLS, AUTH PLAIN and LOGIN) and stores them, never relaying one; C{[pop3]}
hands each user the messages sent to their address.  Both are Twisted's own
protocols (L{twisted.mail.smtp.ESMTP}, L{twisted.mail.pop3.POP3}) behind a
cred portal, with netlab's accounting, limits and events around them.
"""
