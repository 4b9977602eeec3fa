"""A host whose user model has no email field (its users sign in by username only)."""
