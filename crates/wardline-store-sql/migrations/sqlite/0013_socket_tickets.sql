-- One-time tickets that open a sync WebSocket (issue 21): a browser cannot
-- send an Authorization header with a WebSocket upgrade, so the web app's
-- worker asks for a ticket with its bearer token and puts the ticket in the
-- socket's URL. Only the SHA-256 of a ticket is kept; a ticket is taken
-- (deleted) by the one upgrade that uses it, and lapses after 30 seconds.
CREATE TABLE socket_tickets (
    ticket_hash BLOB PRIMARY KEY,
    session_id  TEXT NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX socket_tickets_expiry ON socket_tickets (expires_at);
