"""Thin Litestar controllers: decode → one flow call → encode."""
