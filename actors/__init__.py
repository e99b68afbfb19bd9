"""The agents of the desk: each a plain logic class plus the thin Ray actor shell around it."""
