"""Export and erasure of everything held about a person, across the apps that hold it."""
