"""What this server asks of other servers, and what it keeps of their answers: provider JWKS, client
metadata documents, the sign-in provider's discovery document and UserInfo, all through one bounded
``fetch_json``; and the per-process cache of tokens whose signatures were already checked.

Every cache here is an object ``create_app`` builds and hangs on the context, read by the injected clock;
nothing is kept in module globals. This package imports nothing from ``app.flows``: the protocol steps
call into it, never the other way (tests/unit/test_outbound_layering.py).
"""
