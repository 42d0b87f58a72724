"""engine of the Serverless MapReduce provider."""
