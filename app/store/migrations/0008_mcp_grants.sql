-- authmd SQLite schema, version 8: an MCP client's grant is a registration of type `mcp` on its human's
-- account; it names the OAuth client and the protected resource, and keeps room for a key thumbprint
-- (sender-constrained tokens later).
ALTER TABLE registrations ADD COLUMN client_id TEXT;
ALTER TABLE registrations ADD COLUMN resource TEXT;
ALTER TABLE registrations ADD COLUMN jkt TEXT;
