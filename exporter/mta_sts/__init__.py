"""MTA-STS (RFC 8461) and TLS-RPT (RFC 8460) of a mail domain: records, the policy, its MX coverage."""
