"""DNS lookups for mail domains, DANE and MTA-STS, through one resolver client."""
