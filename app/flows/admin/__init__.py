"""The operator's view and verbs, shared by the admin HTTP API (``app/routes/admin.py``) and the admin
CLI (``app/cli/admin.py``): records as typed views (``views``), the reads and walks behind list, show and
events (``query``), revocations through the verbs (``act``), and the admin-key check (``keys``).

Every state change goes through ``app/flows/grants.py`` with the operator named, so each one writes its
``operator.action`` event in the same store step as the change.
"""
