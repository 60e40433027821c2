"""The task service: the HTTP face of remote execution, the server behind the client library."""
