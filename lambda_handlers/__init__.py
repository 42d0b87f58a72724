"""Data plane: the handlers that run inside AWS Lambda (standard library, boto3 and vendored code only)."""
