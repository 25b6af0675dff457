"""chatbus benchmark."""
