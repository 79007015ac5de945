"""ATNA audit messages over syslog (IHE ITI-20): RFC 5425 TLS, RFC 6587 TCP
and RFC 5426 UDP listeners that map each message to events and append them
to the chain, keeping what cannot be mapped whole in quarantine.

* ``framing``: frames out of a TCP byte stream (octet counting or LF / NUL /
  CRLF terminators), sans-I/O;
* ``header``: the RFC 5424 (or RFC 3164-style) header, and the MSG after it;
* ``identity``: who a sender is (TLS client certificate CN) and the source
  systems it may write as;
* ``ingest``: message -> events -> the append path, in small batches;
  quarantine for the rest;
* ``listeners``: the asyncio servers, with backpressure.
"""
