"""
The identification and login service, C{[login]}: a Unix-style
C{login: }/C{Password: } over telnet or netcat, salted scrypt passwords,
login tokens, and a tiny shell.
"""
