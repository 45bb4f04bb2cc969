"""An agent's client for any auth.md service: one command from a bare API URL to authenticated calls.

  authmd agent register https://api.example.com/v1/notes      # discover, register, get a token
  authmd agent call https://api.example.com/v1/notes -X POST -d '{"text":"hi"}'
  authmd agent claim --email ada@example.com                  # hand the account to a human
  authmd agent token | status | revoke

register   URL (an API URL, whose 401 names the metadata, or an issuer): anonymous by default,
           --login-hint EMAIL (service_auth: nothing is issued until that human authorizes) or
           --id-jag FILE|- (your platform's ID-JAG; not sent when the service publishes a trust list,
           issuers_supported, without its issuer). Solves a proof of work when asked. Reuses a live
           stored credential for the service instead of creating a second account, unless --new;
           one the service refuses (revoked) is replaced. --new over a credential a human has
           claimed is refused (exit 2, naming the account) unless --discard-claimed: forgetting it
           would lose the agent's only way into a permanent account.
claim      starts a claim attempt, prints the link for the human (a secret), waits until they have
           authorized, asks for the code they read back (or takes --code), and stores the post-claim
           credentials. --no-wait only starts the attempt; --code CODE alone completes one. The code
           is sent as typed ("870 581" is fine: the service ignores spaces and hyphens). When the
           service already has as many live links as it allows (too_many_attempts), the last link
           shown is shown again if it still lives; otherwise it exits 1 (use a link already given,
           or wait for one to expire). A human who pressed "This wasn't me" (claim_denied) or a
           revoked registration (claim_revoked) ends it with exit 1, and the stored credentials,
           dead with the registration, are forgotten.
token      prints an access token the service has just issued (re-exchanging, or refreshing the
           assertion when it expired): never a stored one it may have revoked.
call       an authenticated request, curl-like (-X, -H, -d); on 401 it gets a new token once.
status     what is stored for the service and the claim's state, checked with the service (the claim
           status, and a new token for the grant).
revoke     revokes the stored grant at the service and forgets it.

A grant the service refuses (invalid_grant, invalid_refresh_token: revoked, or ended) is forgotten like
a revoked claim: exit 1 with a hint naming `authmd agent register ISSUER`, which then registers anew.
Every command a hint names works as written (it keeps --home, and adds --issuer when several
services are stored). Progress (proof of work, waiting for the human) redraws one line on a
terminal; on a pipe it is one line at most.

A rate limit (429 rate_limit_exceeded, or rate_limited) asking for at most 10 s is waited out and the
request sent once more; a longer one exits 1 with the wait in the message (and `retry_after` in --json).
Credentials live in $AUTHMD_HOME or ~/.config/authmd (directory 0700, one 0600 file per issuer).
--json prints one JSON object on stdout and nothing else. Exit codes: 0 done; 1 the service refused
(its error and hint are shown: also a rate limit, a denied or revoked claim; `status` exits 1 when
the registration is known revoked); 2 usage (also a URL that is not http(s), an unreadable file, or
--new over a claimed credential); 3 the service could not be reached (the reason is given: connection
refused, name not resolved, TLS failure, timed out) or does not speak the protocol; 4 waiting for the
human ran out (claim not confirmed); 5 nothing usable stored for the service.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from app.agent.client import Client, ClientError, CredentialStore, ServiceError
from app.agent.verbs.claim import cmd_claim
from app.agent.verbs.output import EXIT_UNREACHABLE, Exit, Output, exit_for
from app.agent.verbs.register import cmd_register
from app.agent.verbs.use import cmd_call, cmd_revoke, cmd_status, cmd_token


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--home", help="where credentials live (default: $AUTHMD_HOME or ~/.config/authmd)")
    verbs = p.add_subparsers(dest="agent_cmd", required=True)

    def verb(name: str, summary: str, example: str) -> argparse.ArgumentParser:
        v = verbs.add_parser(
            name,
            help=summary,
            description=f"{summary}\n\nexample:\n  {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        v.add_argument("--json", action="store_true", help="print one JSON object and nothing else on stdout")
        return v

    reg = verb(
        "register", "discover a service and register with it", "authmd agent register http://127.0.0.1:8000/api/notes"
    )
    reg.add_argument("url", help="an API URL of the service, or its issuer")
    how = reg.add_mutually_exclusive_group()
    how.add_argument("--login-hint", metavar="EMAIL", help="service_auth: register for this human")
    how.add_argument("--id-jag", metavar="FILE", help="an ID-JAG from your platform (- reads stdin)")
    reg.add_argument("--new", action="store_true", help="register again even if a live credential is stored")
    reg.add_argument(
        "--discard-claimed",
        action="store_true",
        help="--new even over a credential a human has claimed, which is then forgotten for good",
    )
    reg.add_argument("--name", help="your agent's name, shown to the human who claims")
    reg.add_argument("--platform", help="your agent's platform, shown to the human who claims")

    claim = verb("claim", "hand the account to a human", "authmd agent claim --email ada@example.com")
    claim.add_argument("--issuer", help="which stored service (needed when several are stored)")
    claim.add_argument("--email", help="the human's email (binds the claim to them)")
    claim.add_argument("--code", help="the code the human read back (completes without asking)")
    claim.add_argument("--no-wait", action="store_true", help="only start the attempt and print the link")
    claim.add_argument("--wait", type=float, default=900.0, help="seconds to wait for the human (default 900)")

    tok = verb("token", "print a fresh access token", 'curl -H "Authorization: Bearer $(authmd agent token)" …')
    tok.add_argument("--issuer", help="which stored service")

    call = verb(
        "call", "an authenticated request", 'authmd agent call http://127.0.0.1:8000/api/notes -d \'{"text":"hi"}\''
    )
    call.add_argument("url")
    call.add_argument("-X", "--request", dest="method", help="method (default GET, or POST with -d)")
    call.add_argument("-H", "--header", dest="headers", action="append", default=[], help="'Name: value'")
    call.add_argument("-d", "--data", help="request body; @FILE reads a file, - reads stdin")
    call.add_argument("--issuer", help="which stored service (default: the one whose origin matches)")

    status = verb("status", "what is stored, and the claim's state", "authmd agent status")
    status.add_argument("--issuer", help="which stored service")

    revoke = verb("revoke", "revoke the stored grant and forget it", "authmd agent revoke")
    revoke.add_argument("--issuer", help="which stored service")


def run(args: argparse.Namespace) -> int:
    store = CredentialStore(Path(args.home) if args.home else None)
    out = Output(args.json)
    client = Client(on_wait=lambda s: out.note(f"the service is rate limiting: waiting {s:g} s, then retrying once"))
    try:
        handler = {
            "register": cmd_register,
            "claim": cmd_claim,
            "token": cmd_token,
            "call": cmd_call,
            "status": cmd_status,
            "revoke": cmd_revoke,
        }[args.agent_cmd]
        return handler(args, client, store, out)
    except Exit as exc:
        out.fail(exc.code, exc.message, exc.hint, exc.data)
        return exc.code
    except ServiceError as exc:
        refusal = exit_for(exc)
        out.fail(refusal.code, refusal.message, refusal.hint, refusal.data)
        return refusal.code
    except ClientError as exc:
        out.fail(EXIT_UNREACHABLE, str(exc))
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        out.fail(130, "interrupted")
        return 130
    finally:
        client.close()
