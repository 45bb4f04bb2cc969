"""Tools beside the server, entered from the `authmd` command: they start and measure servers and are
no part of one (nothing in the server imports them)."""
