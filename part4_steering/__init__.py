"""Section 4: steering with persona vectors, monitoring, a multi-trait pipeline and geometry."""
