"""The SMTP protocol: replies, EHLO capabilities, AUTH, the test message."""
