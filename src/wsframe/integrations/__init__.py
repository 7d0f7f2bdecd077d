"""WebSockets inside servers people already run: each module takes over a connection from one of them."""
