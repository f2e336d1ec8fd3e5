class DataFileError(FileNotFoundError):
    """A dataset file is missing, truncated, corrupt or of the wrong format."""
