"""Screens: the lab list (home), one lab, and the key help."""
