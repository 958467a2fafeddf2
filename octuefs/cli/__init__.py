"""The `octuefs` command."""
