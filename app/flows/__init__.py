"""The protocol, one module per step: discover → challenge → register → exchange → use → revoke → expire."""
