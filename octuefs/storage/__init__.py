"""The storage boundary: the only code that talks to Google Cloud Storage."""
