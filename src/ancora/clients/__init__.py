"""HTTP clients of the stack's own services, shared by the task service, the CLI and the UI."""
