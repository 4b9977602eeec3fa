def address_from_directory(user):
    """The host's directory knows each member's verified address by username."""
    return f"{user.username}@members.example"
