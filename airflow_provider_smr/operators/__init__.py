"""operators of the Serverless MapReduce provider."""
