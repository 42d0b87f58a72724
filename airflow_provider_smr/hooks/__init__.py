"""hooks of the Serverless MapReduce provider."""
