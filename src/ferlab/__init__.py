"""ferlab: facial expression recognition on FER2013-style faces."""
__version__ = "0.1.0"
