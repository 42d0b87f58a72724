"""deploy of the Serverless MapReduce provider."""
