"""One probe run: the conversation phase by phase, its frozen result, transcript and report."""
