"""Lambda runtime of the local stack: sandboxed warm workers and the invoke path."""
