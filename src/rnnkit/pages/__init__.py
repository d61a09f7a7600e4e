"""HTML pages of results: what a person would rather look at than numbers."""
