"""sensors of the Serverless MapReduce provider."""
