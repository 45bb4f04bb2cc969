"""The human claim (spec/protocol.md § Claim): an agent starts an attempt, a human signs in and authorizes
it, the page shows a code, the agent completes with the code and the account becomes the human's.

Tokens locate their own record (``app/tokens.py``), so every step is one read and one compare-and-set on
the account's own claim record (one hash slot on Redis Cluster), never a global index:

- claim token ``clm_…``: a MAC, nothing stored; attempt token ``cvt_…``: only its hash is stored.
  Several attempts may be live at once (``claim_max_live_attempts``), each with its own ``login_hint``;
- the 6-digit code: stored as an HMAC over (attempt id, code); 10-minute life. The agent names no
  attempt: a code completes the claim if it is the live code of any attempt a human confirmed. Wrong
  codes are charged to the claim: 5 end every live attempt (a window), 15 over the claim's life lock it
  for good. The budget is reserved before a code is compared, in one atomic store step
  (``Store.check_code``): parallel guesses get no more comparisons than sequential ones.

The transitions, with the module that makes each and the event it writes (spec/events.md)::

    (no claim) ──start──────────────▶ pending        claim_attempt.created          start / by_idjag
    pending ──start──────────────────▶ pending        claim_attempt.created (+ .expired: replaced/ended)
    pending ──confirm (human)────────▶ pending        claim.confirmed (the attempt shows a code)   human
    pending ──deny (human)───────────▶ denied         claim.denied, then the grant is revoked      human
    pending ──complete (right code)──▶ claimed        claim.completed + credential_issued          complete
    pending ──complete (budget spent)▶ pending        claim_attempt.expired (code_budget); 15: locked
    pending ──ID-JAG, person linked──▶ claimed        claim.completed + credential_issued          by_idjag
    pending ──grant revoked──────────▶ (claim_revoked for every later step)
    any ──claim window ends──────────▶ (claim_expired for every later step)

Every step that writes retries through one loop, ``settle`` (``ceremony.py``): a lost race decides again
from what won, so contention is not an error the client sees. ``complete`` and ``by_idjag`` are
imported as modules by the routes (they need the refresh flow, which itself uses ``settle``).
"""

from app.flows.claim.ceremony import (
    CODE_TTL_SECONDS,
    LOST,
    MAX_ATTEMPT_FAILURES,
    MAX_CLAIM_FAILURES,
    Lost,
    attempt_hash,
    check_login_hint,
    claim_block,
    claim_events,
    claim_token,
    methods_offered,
    new_attempt,
    new_claim,
    require_claims_offered,
    settle,
    with_attempt,
)
from app.flows.claim.human import AttemptView, confirm, deny, find_attempt, wrong_account
from app.flows.claim.start import start_attempt, status

__all__ = [
    "CODE_TTL_SECONDS",
    "LOST",
    "MAX_ATTEMPT_FAILURES",
    "MAX_CLAIM_FAILURES",
    "AttemptView",
    "Lost",
    "attempt_hash",
    "check_login_hint",
    "claim_block",
    "claim_events",
    "claim_token",
    "confirm",
    "deny",
    "find_attempt",
    "methods_offered",
    "new_attempt",
    "new_claim",
    "require_claims_offered",
    "settle",
    "start_attempt",
    "status",
    "with_attempt",
    "wrong_account",
]
