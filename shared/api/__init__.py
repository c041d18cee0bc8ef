"""HTTP plumbing: envelope, error mapping, validation, bearer auth, app factory, Lambda adapter."""
