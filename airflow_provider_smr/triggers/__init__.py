"""triggers of the Serverless MapReduce provider."""
